"""The shared store on Redis: :class:`RedisLeases`, opened by :func:`connect`.

One client per process: ``async with connect(config.redis_url) as leases:`` around the service,
then every task uses ``leases``. Connecting is lazy: an unreachable Redis at start-up does not
stop the service, its calls raise :class:`~trioproxy.cluster.leases.StoreUnavailable` until
Redis answers. URL forms: :mod:`trioproxy.config.cluster`.

Every call runs under a deadline (``call_timeout``, ``TRIOPROXY_REDIS_TIMEOUT``) and turns a
timeout, a connection error or a Redis error into ``StoreUnavailable``. Every change is one Lua
script on keys of one hash tag (:mod:`.keys`, :mod:`.scripts`), so it also runs on Redis
Cluster; expiry follows Redis's clock, never ours.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import coredis
import trio
from coredis.commands.script import Script
from coredis.connection import TCPLocation
from coredis.exceptions import RedisError

from ..config.cluster import sentinel_url
from . import records, scripts
from .keys import KeyLayout
from .leases import LAST_KEPT, Claim, Holder, Instance, StoreUnavailable

__all__ = ["RedisLeases", "connect"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_FAILURES: tuple[type[BaseException], ...] = (
    RedisError,
    OSError,
    TimeoutError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


def _ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLeases:
    """:class:`~trioproxy.cluster.leases.Leases` on a coredis client (``decode_responses``)."""

    def __init__(
        self, client: coredis.Redis[str], *, prefix: str = "trioproxy:", timeout: float = 2.0
    ) -> None:
        self.keys = KeyLayout(prefix)
        self.timeout = timeout
        self._client = client
        self._scripts: dict[str, Script[str]] = {}

    async def _call(self, what: str, awaitable: Awaitable[T]) -> T:
        try:
            with trio.fail_after(self.timeout):
                return await awaitable
        except trio.TooSlowError:
            raise StoreUnavailable(f"Redis did not answer {what} in {self.timeout:g} s") from None
        except _FAILURES as exc:
            raise StoreUnavailable(f"Redis failed {what}: {exc!r}") from exc
        except BaseExceptionGroup as group:
            failures, rest = group.split(_FAILURES)
            if failures is None or rest is not None:
                raise
            raise StoreUnavailable(f"Redis failed {what}: {group!r}") from group

    async def _run(self, what: str, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._client.register_script(source)
        return await self._call(what, script.execute(keys=list(keys), args=list(args)))

    async def claim(self, channel: str, me: Instance, ttl: float) -> Claim:
        keys = (self.keys.lease(channel), self.keys.fence(channel), self.keys.last(channel))
        record = records.encode_instance(me, facts=False)
        ours, token, instance, session, *last = await self._run(
            "claim", scripts.CLAIM, keys, (me.id, record, _ms(ttl), channel)
        )
        if int(ours):
            if last:
                last_token, last_instance, last_session = last
                previous = records.holder(str(last_instance), last_token, _text(last_session))
                return Claim(int(token), previous)
            return Claim(int(token))
        return Claim(None, records.holder(str(instance), token, _text(session)))

    async def renew(self, channel: str, token: int, ttl: float) -> bool:
        keys = (self.keys.lease(channel),)
        return bool(await self._run("renew", scripts.RENEW, keys, (str(token), _ms(ttl))))

    async def release(self, channel: str, token: int) -> None:
        keys = (self.keys.lease(channel), self.keys.last(channel))
        await self._run("release", scripts.RELEASE, keys, (str(token),))

    async def holder(self, channel: str) -> Holder | None:
        fields = ("token", "instance", "session")
        token, instance, session = await self._call(
            "holder", self._client.hmget(self.keys.lease(channel), fields)
        )
        if token is None or instance is None:
            return None
        return records.holder(instance, token, session)

    async def note_session(self, channel: str, token: int, session: dict[str, Any] | None) -> bool:
        keys = (self.keys.lease(channel), self.keys.last(channel))
        args = (str(token), records.encode_session(session), _ms(LAST_KEPT))
        return bool(await self._run("note_session", scripts.NOTE_SESSION, keys, args))

    async def take_engine_slot(
        self, engine: str, channel: str, token: int, limit: int, ttl: float
    ) -> bool:
        # The lease and the engine's slots live in different slots of a Redis Cluster, so the
        # token is checked first, then the slot taken: an owner that loses its lease between
        # the two keeps the count for at most ``ttl``, and its successor's count renews it.
        lease_token = await self._call(
            "take_engine_slot", self._client.hget(self.keys.lease(channel), "token")
        )
        if lease_token != str(token):
            return False
        keys = (self.keys.engine(engine), self.keys.engines)
        args = (channel, str(max(0, limit)), _ms(ttl), engine)
        return bool(await self._run("take_engine_slot", scripts.TAKE_ENGINE_SLOT, keys, args))

    async def release_engine_slot(self, engine: str, channel: str) -> None:
        await self._call(
            "release_engine_slot", self._client.zrem(self.keys.engine(engine), [channel])
        )

    async def engine_loads(self) -> dict[str, int]:
        flat = await self._run(
            "engine_loads", scripts.ENGINE_LOADS, (self.keys.engines,), (self.keys.engine_prefix,)
        )
        return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def heartbeat(self, me: Instance, ttl: float) -> None:
        keys = (self.keys.instance(me.id), self.keys.instances)
        args = (me.id, records.encode_instance(me), _ms(ttl))
        await self._run("heartbeat", scripts.HEARTBEAT, keys, args)

    async def instances(self) -> list[Instance]:
        found = await self._run(
            "instances", scripts.INSTANCES, (self.keys.instances,), (self.keys.instance_prefix,)
        )
        alive = [records.decode_instance(str(record)) for record in found]
        return sorted(alive, key=lambda instance: (instance.started_at, instance.id))

    async def leases(self) -> dict[str, Holder]:
        return await self._call("leases", self._scan_leases())

    async def _scan_leases(self) -> dict[str, Holder]:
        held: dict[str, Holder] = {}
        async for key in self._client.scan_iter(match=self.keys.lease_pattern, count=500):
            channel = self.keys.channel_of(key)
            if channel is None:
                continue
            token, instance, session = await self._client.hmget(
                key, ("token", "instance", "session")
            )
            if token is not None and instance is not None:
                held[channel] = records.holder(instance, token, session)
        return dict(sorted(held.items()))


def _client(url: str, timeout: float) -> tuple[Any, coredis.Redis[str]]:
    """The client for ``url`` and what to enter to open it (the Sentinel for a Sentinel URL)."""
    options: dict[str, Any] = {"connect_timeout": timeout, "stream_timeout": timeout}
    if not url.startswith("redis+sentinel://"):
        client = coredis.Redis.from_url(url, decode_responses=True, **options)
        return client, client
    parts = sentinel_url(url)
    sentinel = coredis.Sentinel(
        [TCPLocation(host, port) for host, port in parts.sentinels],
        decode_responses=True,
        sentinel_kwargs={"connect_timeout": timeout, "stream_timeout": timeout},
        **options,
    )
    primary = sentinel.primary_for(
        parts.service, username=parts.username, password=parts.password, db=parts.db
    )
    return sentinel, primary


@asynccontextmanager
async def connect(
    url: str, *, prefix: str = "trioproxy:", call_timeout: float = 2.0
) -> AsyncIterator[RedisLeases]:
    """Open the one client of this process on ``url`` (redis://, rediss://, unix:// or
    redis+sentinel://) and close it on the way out; no connection is made before the first call.
    ``call_timeout`` bounds every call (``TRIOPROXY_REDIS_TIMEOUT``).
    """
    opened, client = _client(url, call_timeout)
    async with opened:
        if opened is not client:
            async with client:
                yield RedisLeases(client, prefix=prefix, timeout=call_timeout)
        else:
            yield RedisLeases(client, prefix=prefix, timeout=call_timeout)
