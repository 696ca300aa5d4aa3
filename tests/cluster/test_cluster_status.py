"""``/proxy/status`` and ``/metrics`` of instances in one cluster, in memory on the virtual clock:
the instances alive, each channel's role and owner, relays and their lag; the keyless view
shows counts and roles, never an instance's address nor a relay's credential.

As in ``test_ownership.py``: the engine serves MPEG-TS, leases last 10 s, heartbeats every
10/3 s.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from trioproxy.channels.membership import Membership
from trioproxy.testing.cluster import Cluster, cluster, instance_url
from trioproxy.testing.harness import CONTENT_A, Harness, default_config, harness

from ..channels.test_ts_upstream import ts_player
from ..observability.test_metrics import scrape, value
from .test_ownership import config, ts_engine

KEY = "cluster-status-key-0123456789"
LEASE = 10.0
BEAT = LEASE / 3

Handle = Callable[[httpx.Request], Awaitable[httpx.Response]]


async def status(h: Harness, *, key: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = await h.client.get("/proxy/status", headers=headers)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def channel_of(body: dict[str, Any], key: str = CONTENT_A) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in body["channels"] if c["channel"] == key]
    (channel,) = found
    return channel


def membership(h: Harness) -> Membership:
    assert h.registry.membership is not None
    return h.registry.membership


async def start_everywhere(c: Cluster, nursery: trio.Nursery) -> None:
    """A TS player on every instance, the first one first: instance 0 owns the channel."""
    players = [ts_player(h) for h in c.instances]
    nursery.start_soon(players[0].run)
    await trio.sleep(1.0)
    for player in players[1:]:
        nursery.start_soon(player.run)
    await trio.sleep(9.0)


async def test_status_and_metrics_show_the_owner_its_relays_and_the_instances_alive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(3, config(), ts_engine()) as c, trio.open_nursery() as nursery:
        await start_everywhere(c, nursery)
        ids = [membership(h).id for h in c.instances]
        owner, relay = await status(c.instances[0]), await status(c.instances[1])
        metrics = await scrape(c.instances[0])
        nursery.cancel_scope.cancel()

    me = owner["cluster"]["instance"]
    assert me["id"] == ids[0]
    assert me["url"] == instance_url(0)
    assert (me["store_reachable"], me["store_failures"], me["takeovers"]) == (True, 0, 0)
    alive = owner["cluster"]["instances"]
    assert sorted(i["url"] for i in alive) == [instance_url(n) for n in range(3)]
    assert [i["id"] for i in alive if i["me"]] == [ids[0]]
    facts = {i["url"]: i["facts"] for i in alive}
    assert facts[instance_url(0)] == {"channels": 1, "owned": 1, "relays": 0, "players": 3}
    assert facts[instance_url(1)] == {"channels": 1, "owned": 0, "relays": 1, "players": 1}
    assert owner["cluster"]["channels"] == {"owner": 1, "relay": 0, "pending": 0}
    assert relay["cluster"]["channels"] == {"owner": 0, "relay": 1, "pending": 0}
    # The owner's channel: its relays, as TS players marked with their instance.
    owned = channel_of(owner)["cluster"]
    assert owned["role"] == "owner"
    assert owned["owner"] == {"id": ids[0], "url": instance_url(0)}
    assert owned["since_data_seconds"] is None
    assert sorted(r["instance"] for r in owned["relays"]) == sorted(ids[1:])
    marked = [p["relay"] for p in channel_of(owner)["ts"]["players"]]
    assert sorted(marked, key=str) == sorted([None, *ids[1:]], key=str)
    # A relay's channel names its owner; media keeps arriving from it.
    relayed = channel_of(relay)["cluster"]
    assert relayed["role"] == "relay"
    assert relayed["owner"] == {"id": ids[0], "url": instance_url(0)}
    assert relayed["relays"] == []
    assert 0.0 <= relayed["since_data_seconds"] <= 1.0
    # Nothing shows a heartbeat's relay token.
    assert "relay_token" not in str(owner)
    assert "relay_token" not in str(relay)

    assert value(metrics, "trioproxy_cluster_instances") == 3
    assert value(metrics, "trioproxy_cluster_channels", role="owner") == 1
    assert value(metrics, "trioproxy_cluster_channels", role="relay") == 0
    assert value(metrics, "trioproxy_cluster_relay_readers") == 2
    assert value(metrics, "trioproxy_cluster_store_reachable") == 1
    assert value(metrics, "trioproxy_cluster_store_failures_total") == 0
    assert value(metrics, "trioproxy_cluster_takeovers_total") == 0


async def test_a_killed_instance_drops_out_once_its_heartbeat_lapses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(3, config(), ts_engine()) as c, trio.open_nursery() as nursery:
        await start_everywhere(c, nursery)
        await trio.sleep(0.5)
        c.kill(2)
        assert len((await status(c.instances[0]))["cluster"]["instances"]) == 3
        # Instance 2's last heartbeat (at 3 * BEAT = 10.0) lapses at 20.0, when instance 0's
        # heartbeat (every BEAT) reads the instances alive.
        await trio.sleep_until(6 * BEAT - 0.01)
        assert value(await scrape(c.instances[0]), "trioproxy_cluster_instances") == 3
        await trio.sleep_until(6 * BEAT + 0.01)
        alive = (await status(c.instances[0]))["cluster"]["instances"]
        assert sorted(i["url"] for i in alive) == [instance_url(0), instance_url(1)]
        assert value(await scrape(c.instances[0]), "trioproxy_cluster_instances") == 2
        nursery.cancel_scope.cancel()


async def test_a_takeover_is_counted_and_the_survivor_relays_from_the_new_owner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(3, config(), ts_engine()) as c, trio.open_nursery() as nursery:
        await start_everywhere(c, nursery)
        c.kill(0)
        await trio.sleep(30.0)
        (new,) = c.owners(CONTENT_A)
        (other,) = c.relays(CONTENT_A)
        taken, follows = await status(c.instances[new]), await status(c.instances[other])
        metrics = await scrape(c.instances[new])
        nursery.cancel_scope.cancel()

    assert taken["cluster"]["instance"]["takeovers"] == 1
    assert value(metrics, "trioproxy_cluster_takeovers_total") == 1
    assert channel_of(taken)["cluster"]["role"] == "owner"
    assert channel_of(follows)["cluster"]["owner"]["url"] == instance_url(new)
    assert len(taken["cluster"]["instances"]) == 2


class Freeze:
    """Relay streams through a switchboard line that stop dead after the first chunk that
    arrives once :meth:`now` was called (a stalled connection, not a closed one)."""

    def __init__(self) -> None:
        self.armed = False
        self.at: float | None = None
        """When the last chunk went through."""

    def now(self) -> None:
        self.armed = True

    def wrap(self, handle: Handle) -> Handle:
        async def handle_async_request(request: httpx.Request) -> httpx.Response:
            response = await handle(request)
            if not request.url.path.startswith("/cluster/relay/"):
                return response
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                stream=_Frozen(stream, self),
                request=request,
            )

        return handle_async_request


class _Frozen(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, freeze: Freeze) -> None:
        self._inner = inner
        self._freeze = freeze

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._inner)
        assert isinstance(chunks, AsyncGenerator)
        async with aclosing(chunks):
            async for chunk in chunks:
                yield chunk
                if self._freeze.armed:
                    self._freeze.at = trio.current_time()
                    await trio.sleep_forever()

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_relay_lag_on_both_sides_of_a_stalled_relay(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    freeze = Freeze()
    async with cluster(2, config(), ts_engine()) as c, trio.open_nursery() as nursery:
        line = c.board.lines["instance-0.test"]
        monkeypatch.setattr(line, "handle_async_request", freeze.wrap(line.handle_async_request))
        await start_everywhere(c, nursery)
        freeze.now()
        while freeze.at is None:  # noqa: ASYNC110 (polls plain data)
            await trio.sleep(0.01)
        await trio.sleep_until(freeze.at + 3.0)
        relay, owner = await status(c.instances[1]), await status(c.instances[0])
        relay_metrics, owner_metrics = await scrape(c.instances[1]), await scrape(c.instances[0])
        nursery.cancel_scope.cancel()

    # On the relay: nothing arrived from the owner for 3 s.
    assert channel_of(relay)["cluster"]["since_data_seconds"] == 3.0
    assert value(relay_metrics, "trioproxy_cluster_relay_lag_seconds", side="relay") == 3.0
    assert value(relay_metrics, "trioproxy_cluster_relay_lag_seconds", side="owner") == 0.0
    # On the owner: the relay, one of its TS players, falls behind its live edge.
    (reader,) = channel_of(owner)["cluster"]["relays"]
    assert reader["lag_segments"] >= 1
    assert 2.0 <= reader["lag_seconds"] <= 3.0
    lag = value(owner_metrics, "trioproxy_cluster_relay_lag_seconds", side="owner")
    assert round(lag, 3) == reader["lag_seconds"]


async def test_the_keyless_status_shows_no_instance_address_nor_relay_credential(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        cluster(3, config().replace(api_key=KEY), ts_engine()) as c,
        trio.open_nursery() as nursery,
    ):
        await start_everywhere(c, nursery)
        survivors = c.instances[1:]
        credentials = [membership(h).credential for h in c.instances]
        ids = [membership(h).id for h in c.instances]
        c.kill(0)  # the relays' sessions end on the dead owner: its address in their reasons
        await trio.sleep(30.0)
        keyless = [await h.client.get("/proxy/status") for h in survivors]
        keyed = [await status(h, key=KEY) for h in survivors]
        nursery.cancel_scope.cancel()

    secrets = ["instance-", *credentials, *(cred.partition(".")[2] for cred in credentials), *ids]
    for response in keyless:
        assert [secret for secret in secrets if secret in response.text] == []
        body = response.json()
        assert body["redacted"] is True
        assert body["cluster"]["channels"]["owner"] + body["cluster"]["channels"]["relay"] == 1
        assert len(body["cluster"]["instances"]) == 2
        assert sum(i["me"] for i in body["cluster"]["instances"]) == 1
        assert {"channels", "owned", "relays", "players"} <= set(
            body["cluster"]["instances"][0]["facts"]
        )
        assert channel_of(body)["cluster"]["role"] in ("owner", "relay")
    # With the key: every address, the dead owner's in the sessions' reasons.
    text = str(keyed)
    assert all(instance_url(n) in text for n in range(3))
    assert not any(secret in text for secret in credentials)


async def test_a_single_instance_has_no_cluster_section_nor_metrics(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config()) as h:
        await h.start()
        await h.wait_channel()
        body = await status(h)
        metrics = await scrape(h)
    assert body["cluster"] is None
    assert channel_of(body)["cluster"] is None
    assert not [name for name, _ in metrics if name.startswith("trioproxy_cluster_")]
