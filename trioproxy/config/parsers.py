"""Parsers for setting values: each turns the text of a variable or flag into its typed value.

A parser raises :class:`ValueError` with a message saying what the value must be; the loader adds
the variable's name. Pure functions, except :func:`sources_file` and :func:`channels_file`, which
read the file they are given.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Literal
from urllib.parse import urlsplit

from .channels import ChannelEntry, parse_channels_file
from .sources import parse_source_list, parse_sources_file

__all__ = [
    "IPNetwork",
    "api_key",
    "bind_address",
    "boolean",
    "byte_count",
    "channels_file",
    "format_bytes",
    "host_list",
    "http_url",
    "log_level",
    "max_height",
    "network_list",
    "optional_path",
    "optional_url",
    "orchestrator_api",
    "player_keys",
    "player_keys_file",
    "positive_int",
    "positive_seconds",
    "seconds",
    "source_list",
    "sources_file",
    "stream_mode",
    "tuner_name",
    "url_list",
    "whole_number",
    "xtream_users",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("must be a whole number ≥ 1")
    return value


def whole_number(text: str) -> int:
    value = int(text.strip() or "0")
    if value < 0:
        raise ValueError("must be a whole number ≥ 0")
    return value


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0 (true/false, yes/no, on/off)")


def seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a number of seconds ≥ 0")
    return value


def positive_seconds(text: str) -> float:
    value = seconds(text)
    if value <= 0:
        raise ValueError("must be a number of seconds > 0")
    return value


def http_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return text.strip().rstrip("/")


def optional_url(text: str) -> str | None:
    return http_url(text) if text.strip() else None


def optional_path(text: str) -> str | None:
    """A file system path (not checked here: its user says when it is unusable); empty: None."""
    return text.strip() or None


def api_key(text: str) -> str | None:
    """A key sent in HTTP headers (``Authorization``, ``X-API-Key``): visible ASCII only."""
    if not text:
        return None
    if not all("!" <= char <= "~" for char in text):
        # Never echo the key itself: the message ends up in logs.
        raise ValueError(
            "must be printable ASCII without spaces or control characters: it is sent in "
            "HTTP headers"
        )
    return text


def url_list(text: str) -> tuple[str, ...]:
    return tuple(http_url(item) for item in text.split(",") if item.strip())


def host_list(text: str) -> tuple[str, ...]:
    """``host``, ``host:port``, ``[v6]:port`` or ``*``, comma-separated, lower-cased."""
    hosts = []
    for item in (part.strip().lower() for part in text.split(",")):
        if not item:
            continue
        if item != "*" and (any(c in item for c in "/@?# ") or item.startswith(":")):
            raise ValueError(f"{item!r} is not a host or host:port")
        hosts.append(item)
    return tuple(hosts)


def network_list(text: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(networks)


def bind_address(text: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8000 or [::1]:8000")
    return text.strip()


def max_height(text: str) -> int:
    """``720``, ``720p`` or ``1280x720``: the tallest picture wanted (0: no limit)."""
    text = text.strip().lower().removesuffix("p")
    if "x" in text:
        width, _, text = text.partition("x")
        if not width.isdigit():
            raise ValueError("must be HEIGHT or WIDTHxHEIGHT, e.g. 720 or 1280x720")
    if not text.isdigit():
        raise ValueError("must be HEIGHT or WIDTHxHEIGHT, e.g. 720 or 1280x720")
    return int(text)


def source_list(text: str) -> tuple[tuple[str, str], ...]:
    return parse_source_list(text)


def _read(path: str) -> str:
    try:
        with open(path.strip(), encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None


def sources_file(text: str) -> tuple[tuple[str, str], ...]:
    """The sources listed in the file named by ``text`` (empty: none)."""
    if not text.strip():
        return ()
    return parse_sources_file(_read(text))


def channels_file(text: str) -> tuple[ChannelEntry, ...] | None:
    """The channels listed in the file named by ``text`` (empty: no channel list)."""
    if not text.strip():
        return None
    return parse_channels_file(_read(text))


_PLAYER_KEY = re.compile(r"[A-Za-z0-9._~-]{12,256}")


def _player_key(key: str) -> str:
    if not _PLAYER_KEY.fullmatch(key):
        # Never echo the key itself: the message ends up in logs.
        raise ValueError(
            "each key must be 12 to 256 of the characters A-Z a-z 0-9 . _ ~ - "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return key


def player_keys(text: str) -> tuple[str, ...]:
    """Comma-separated player keys."""
    return tuple(_player_key(item.strip()) for item in text.split(",") if item.strip())


def player_keys_file(text: str) -> tuple[str, ...]:
    """The player keys in the file named by ``text``, one a line (``#`` comments; empty: none)."""
    if not text.strip():
        return ()
    lines = (line.strip() for line in _read(text).splitlines())
    return tuple(_player_key(line) for line in lines if line and not line.startswith("#"))


_XTREAM_USER = re.compile(r"[A-Za-z0-9._~-]{1,64}")


def xtream_users(text: str) -> tuple[tuple[str, str], ...]:
    """``name:password,...``: Xtream logins; each password must be a valid player key."""
    users: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, password = item.partition(":")
        if not sep or not _XTREAM_USER.fullmatch(name):
            # Never echo the item: it holds a password.
            raise ValueError(
                "each login must be name:password, the name 1 to 64 of A-Z a-z 0-9 . _ ~ -"
            )
        if name in users:
            raise ValueError(f"the user {name!r} is listed twice")
        users[name] = _player_key(password)
    return tuple(users.items())


def tuner_name(text: str) -> str:
    name = text.strip()
    if not 1 <= len(name) <= 64 or not name.isprintable():
        raise ValueError("must be 1 to 64 printable characters")
    return name


def stream_mode(text: str) -> Literal["HLS", "TS"]:
    mode = text.strip().upper()
    if mode == "HLS":
        return "HLS"
    if mode == "TS":
        return "TS"
    raise ValueError("must be HLS or TS")


def upstream_mode(text: str) -> Literal["ts", "hls"]:
    mode = text.strip().lower()
    if mode == "ts":
        return "ts"
    if mode == "hls":
        return "hls"
    raise ValueError("must be ts or hls")


def log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return level


def log_format(text: str) -> Literal["text", "json"]:
    form = text.strip().lower()
    if form == "text":
        return "text"
    if form == "json":
        return "json"
    raise ValueError("must be text or json")


def orchestrator_api(text: str) -> Literal["auto", "v1", "v2"]:
    api = text.strip().lower()
    if api == "v1":
        return "v1"
    if api == "v2":
        return "v2"
    if api == "auto":
        return "auto"
    raise ValueError("must be one of auto, v1, v2")


_BINARY = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def byte_count(text: str) -> int:
    """A number of bytes ≥ 1, maybe with a binary suffix: ``65536``, ``64K``, ``8M``, ``1G``."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = _BINARY.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit() or int(digits) < 1:
        raise ValueError("must be a number of bytes ≥ 1, e.g. 65536, 64K, 8M or 1G")
    return int(digits) * scale


def format_bytes(count: int) -> str:
    """``count`` as :func:`byte_count` reads it, with the largest suffix that divides it."""
    for suffix, scale in sorted(_BINARY.items(), key=lambda item: -item[1]):
        if count % scale == 0:
            return f"{count // scale}{suffix}"
    return str(count)
