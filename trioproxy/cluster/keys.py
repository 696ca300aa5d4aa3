"""Where the cluster keeps things in Redis: every key name, built in one place.

Redis Cluster runs a script only when every key it touches lives in one slot, and a key's slot
is that of its **hash tag**, the text between its first ``{`` and the ``}`` after it. So the keys
a script uses together share a tag:

- ``<prefix>{c:<channel>}:lease`` (a hash: holder, token, session; expires with the lease) and
  ``<prefix>{c:<channel>}:fence`` (the channel's token counter; never expires) and
  ``<prefix>{c:<channel>}:last`` (the last owner's noted session, kept for an hour past its
  lease, for a successor to end it): one slot per channel, so channels spread over the
  cluster's nodes;
- ``<prefix>{engines}:engine:<engine>`` (a sorted set: channel → expiry in ms) and
  ``<prefix>{engines}:index`` (the set of engines counted): one slot for all engines, so one
  script prunes, counts and adds, and another lists every engine's load;
- ``<prefix>{instances}:instance:<id>`` (its heartbeat; expires) and
  ``<prefix>{instances}:index`` (a sorted set: id → expiry in ms): one slot.

The prefix has no braces (:func:`~trioproxy.config.cluster.redis_prefix`); a channel key with a
``}`` cuts its tag short the same way in both of its keys, which still share a slot.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KeyLayout"]

_LEASE_SUFFIX = "}:lease"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """The key names under one ``prefix``."""

    prefix: str = "trioproxy:"

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError("a key prefix must not contain { or }")

    def lease(self, channel: str) -> str:
        return f"{self.prefix}{{c:{channel}{_LEASE_SUFFIX}"

    def last(self, channel: str) -> str:
        """The last owner's record (its instance, token and session), kept past its lease."""
        return f"{self.prefix}{{c:{channel}}}:last"

    def fence(self, channel: str) -> str:
        return f"{self.prefix}{{c:{channel}}}:fence"

    @property
    def lease_pattern(self) -> str:
        """A SCAN ``MATCH`` pattern for every lease key (glob characters of the prefix escaped)."""
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix)
        return f"{escaped}{{c:*{_LEASE_SUFFIX}"

    def channel_of(self, lease_key: str) -> str | None:
        """The channel whose lease ``lease_key`` is, or None when it is not a lease key."""
        start = f"{self.prefix}{{c:"
        if not (lease_key.startswith(start) and lease_key.endswith(_LEASE_SUFFIX)):
            return None
        return lease_key[len(start) : -len(_LEASE_SUFFIX)]

    @property
    def engine_prefix(self) -> str:
        return f"{self.prefix}{{engines}}:engine:"

    def engine(self, engine: str) -> str:
        return self.engine_prefix + engine

    @property
    def engines(self) -> str:
        return f"{self.prefix}{{engines}}:index"

    @property
    def instance_prefix(self) -> str:
        return f"{self.prefix}{{instances}}:instance:"

    def instance(self, instance_id: str) -> str:
        return self.instance_prefix + instance_id

    @property
    def instances(self) -> str:
        return f"{self.prefix}{{instances}}:index"
