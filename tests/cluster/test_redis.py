"""What only the Redis store has to show: key layout, URL forms, deadlines, prefixes."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from trioproxy.cluster import Instance, StoreUnavailable
from trioproxy.cluster.keys import KeyLayout
from trioproxy.cluster.redis import connect
from trioproxy.testing.redis_server import RedisServer, redis_sentinel

from .conftest import needs_redis

ME = Instance("me", "http://10.0.0.1:8000", started_at=1.0)


def _crc16(data: bytes) -> int:
    """CRC16-CCITT (XModem), the checksum Redis Cluster hashes keys with."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (its hash tag's, when it has a non-empty one)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return _crc16(key.encode()) % 16384


def test_the_slot_helper_agrees_with_the_redis_cluster_specification() -> None:
    assert _crc16(b"123456789") == 0x31C3
    assert slot("{user1000}.following") == slot("{user1000}.followers")
    assert slot("foo{}{bar}") == _crc16(b"foo{}{bar}") % 16384


@pytest.mark.parametrize("channel", ["abc123", "a}b", "}x", "{y}", "sky news", "x:lease"])
@pytest.mark.parametrize("prefix", ["trioproxy:", "tp/cluster-2:"])
def test_the_keys_a_script_uses_together_share_a_slot(prefix: str, channel: str) -> None:
    keys = KeyLayout(prefix)
    assert slot(keys.lease(channel)) == slot(keys.fence(channel))
    assert keys.channel_of(keys.lease(channel)) == channel
    engine = "http://10.0.0.9:6878"
    assert slot(keys.engine(engine)) == slot(keys.engines) == slot(keys.engine_prefix + "x")
    assert slot(keys.instance("i1")) == slot(keys.instances) == slot(keys.instance_prefix + "y")
    assert all(k.startswith(prefix) for k in (keys.lease(channel), keys.engines, keys.instances))


def test_channels_spread_over_slots() -> None:
    keys = KeyLayout()
    assert len({slot(keys.lease(f"channel-{n}")) for n in range(50)}) > 40


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        KeyLayout("tp{1}:")


async def test_a_redis_that_never_answers_is_unavailable_at_the_deadline() -> None:
    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            while await stream.receive_some():
                pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with connect(f"redis://127.0.0.1:{port}", call_timeout=0.3) as leases:
            with trio.fail_after(10), pytest.raises(StoreUnavailable, match="did not answer"):
                await leases.claim("ch", ME, 1.0)
        nursery.cancel_scope.cancel()


async def test_a_redis_that_is_not_there_is_unavailable() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with connect(f"redis://127.0.0.1:{port}", call_timeout=1.0) as leases:
        with pytest.raises(StoreUnavailable):
            await leases.holder("ch")


@needs_redis
async def test_a_unix_socket_url_reaches_the_same_server(redis: RedisServer) -> None:
    async with connect(redis.url) as over_tcp, connect(redis.unix_url) as over_unix:
        claim = await over_tcp.claim("ch", ME, 10.0)
        holder = await over_unix.holder("ch")
        assert holder is not None
        assert holder.token == claim.token


@needs_redis
async def test_a_sentinel_url_reaches_the_primary(redis: RedisServer) -> None:
    async with redis_sentinel(redis, "proxies") as sentinel:
        assert sentinel.url == f"redis+sentinel://127.0.0.1:{sentinel.port}/proxies"
        async with connect(sentinel.url) as through, connect(redis.url) as direct:
            claim = await through.claim("ch", ME, 10.0)
            holder = await direct.holder("ch")
            assert holder is not None
            assert holder.token == claim.token


@needs_redis
async def test_clusters_with_different_prefixes_share_a_redis_apart(redis: RedisServer) -> None:
    async with (
        connect(redis.url, prefix="one:") as one,
        connect(redis.url, prefix="two:") as two,
    ):
        assert (await one.claim("ch", ME, 10.0)).ours
        assert (await two.claim("ch", Instance("other", "http://x"), 10.0)).ours
        await one.heartbeat(ME, 10.0)
        assert list(await one.leases()) == ["ch"]
        assert await two.instances() == []
        token = (await one.claim("glob*", ME, 10.0)).token
        assert token is not None
        assert sorted(await one.leases()) == ["ch", "glob*"]
        assert list(await two.leases()) == ["ch"]
