"""The cluster settings: the shared Redis, where this instance is reached, how long a lease lasts.

Without ``TRIOPROXY_REDIS_URL`` trioproxy runs alone, exactly as it always did. With it, every
instance sharing that Redis (and ``TRIOPROXY_REDIS_PREFIX``) is one cluster (README: Cluster).

Redis URLs (:func:`redis_url`):

- ``redis://[[user]:password@]host[:port][/db]`` and ``rediss://…`` (TLS);
- ``unix://[[user]:password@]/path/to/redis.sock[?db=N]``;
- ``redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/service_name[/db]``: the
  Sentinels (port 26379 unless given) name the primary of ``service_name``; the credentials and
  the database are the primary's, the Sentinels are asked without them.

This instance's URL (:meth:`ClusterSettings.instance_address`): ``TRIOPROXY_INSTANCE_URL`` when
set; else ``http://`` + ``TRIOPROXY_BIND`` when it names a host (a loopback one serves instances
on the same machine only); else, bound to every address (``0.0.0.0``, ``[::]``), this machine's
host name (in Docker the container's, which its network resolves) and the bound port. A host
name of ``localhost`` or none is refused: set ``TRIOPROXY_INSTANCE_URL``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from . import parsers as parse
from .basic import BasicSettings
from .declare import ConfigError, setting

__all__ = ["ClusterSettings", "SentinelURL", "redis_prefix", "redis_url", "sentinel_url"]

_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")
_SENTINEL_PORT = 26379
_WILDCARDS = ("0.0.0.0", "[::]", "::", "*", "")


@dataclass(frozen=True)
class SentinelURL:
    """A ``redis+sentinel://`` URL taken apart."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    username: str | None = None
    password: str | None = None
    db: int = 0


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"names a Sentinel without a host: {text!r}")
    if not port:
        return host, _SENTINEL_PORT
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"names a Sentinel with an invalid port: {text!r}")
    return host, int(port)


def sentinel_url(text: str) -> SentinelURL:
    """Take a ``redis+sentinel://`` URL apart; :class:`ValueError` says what is wrong."""
    scheme, sep, rest = text.strip().partition("://")
    if scheme != "redis+sentinel" or not sep:
        raise ValueError("must start with redis+sentinel://")
    location, _, path = rest.partition("/")
    path = path.split("?", 1)[0].strip("/")
    credentials, at, hosts = location.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(host.strip()) for host in hosts.split(","))
    service, _, db = path.partition("/")
    if not service:
        raise ValueError("must name the service after the Sentinels: …/service_name")
    if db and not db.isdigit():
        raise ValueError("has a database that is not a number")
    return SentinelURL(sentinels, unquote(service), username, password, int(db or 0))


def redis_url(text: str) -> str | None:
    """A Redis URL (see the module's docstring), or None for an empty value."""
    text = text.strip()
    if not text:
        return None
    scheme = text.partition("://")[0].lower()
    if scheme not in _SCHEMES or "://" not in text:
        raise ValueError("must be a redis://, rediss://, unix:// or redis+sentinel:// URL")
    if scheme == "redis+sentinel":
        sentinel_url(text)
        return text
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    if scheme == "unix" and not parts.path:
        raise ValueError("must name the socket's path: unix:///path/to/redis.sock")
    if scheme != "unix" and not parts.hostname:
        raise ValueError("must name a host")
    return text


def redis_prefix(text: str) -> str:
    """A key prefix: no braces (they would change which keys share a Redis Cluster slot)."""
    text = text.strip()
    if not text or "{" in text or "}" in text:
        raise ValueError("must be non-empty and without { or }")
    return text


@dataclass(frozen=True)
class ClusterSettings(BasicSettings):
    """The basic settings and those about running as a cluster; the rest are
    :class:`~trioproxy.config.settings.Config`'s."""

    redis_url: str | None = setting(
        "TRIOPROXY_REDIS_URL",
        None,
        redis_url,
        "the Redis that instances share to act as one (`redis://`, `rediss://`, `unix://`, "
        "`redis+sentinel://host:port[,host:port]/service`; README: Cluster); unset: this "
        "instance alone",
        repr=False,
    )
    redis_prefix: str = setting(
        "TRIOPROXY_REDIS_PREFIX",
        "trioproxy:",
        redis_prefix,
        "prefix of every Redis key: instances with the same Redis and prefix are one cluster",
    )
    redis_timeout: float = setting(
        "TRIOPROXY_REDIS_TIMEOUT",
        2.0,
        parse.positive_seconds,
        "seconds one Redis call may take; then Redis counts as unreachable for that call",
    )
    instance_url: str | None = setting(
        "TRIOPROXY_INSTANCE_URL",
        None,
        parse.optional_url,
        "the URL other instances reach this one at; unset: `http://` + `TRIOPROXY_BIND`, or "
        "with `0.0.0.0`/`[::]` this machine's host name and the bound port",
    )
    lease_seconds: float = setting(
        "TRIOPROXY_LEASE_SECONDS",
        10.0,
        parse.positive_seconds,
        "seconds a channel's owner holds it without renewing; an instance that died is "
        "replaced after this long (more than twice `TRIOPROXY_REDIS_TIMEOUT`)",
    )

    def __post_init__(self) -> None:
        if self.redis_url is None:
            return
        if self.lease_seconds <= 2 * self.redis_timeout:
            raise ConfigError(
                f"TRIOPROXY_LEASE_SECONDS ({self.lease_seconds:g}) must be more than twice "
                f"TRIOPROXY_REDIS_TIMEOUT ({self.redis_timeout:g})"
            )
        self.instance_address()

    def instance_address(self) -> str:
        """The URL other instances reach this one at (the rule is in the module's docstring)."""
        if self.instance_url is not None:
            return self.instance_url
        host, _, port = self.bind.rpartition(":")
        if host not in _WILDCARDS:
            return f"http://{self.bind}"
        name = socket.gethostname()
        if not name or name == "localhost":
            raise ConfigError(
                f"TRIOPROXY_BIND={self.bind} listens on every address and this machine has no host "
                "name the other instances could reach: set TRIOPROXY_INSTANCE_URL"
            )
        return f"http://{name}:{port}"
