"""The store contract (:class:`trioproxy.cluster.Leases`), for the in-memory store and Redis.

Each test takes ``clock`` so that the in-memory run gets the autojump clock (see conftest).
"""

from __future__ import annotations

import pytest
import trio.testing

from trioproxy.cluster import Instance, StoreUnavailable

from .conftest import Store

Clock = trio.testing.MockClock | None

A = Instance("a", "http://10.0.0.1:8000", started_at=100.0, facts={"channels": 2})
B = Instance("b", "http://10.0.0.2:8000", started_at=200.0)


async def test_a_claim_is_ours_and_a_second_claimer_gets_the_holder(
    store: Store, clock: Clock
) -> None:
    leases, ttl = store.leases, 10 * store.unit
    first = await leases.claim("ch", A, ttl)
    assert first.ours
    assert first.holder is None
    assert first.token is not None
    again = await leases.claim("ch", A, ttl)
    assert again.ours
    assert again.token == first.token
    other = await leases.claim("ch", B, ttl)
    assert not other.ours
    assert other.holder is not None
    assert other.holder.token == first.token
    assert other.holder.instance == Instance(A.id, A.url, A.started_at)  # a lease keeps no facts
    assert await leases.holder("ch") == other.holder
    assert await leases.leases() == {"ch": other.holder}
    assert await leases.holder("nobody") is None


async def test_released_lease_goes_to_the_next_claimer_with_a_higher_token(
    store: Store, clock: Clock
) -> None:
    leases, ttl = store.leases, 10 * store.unit
    first = await leases.claim("ch", A, ttl)
    assert first.token is not None
    await leases.release("ch", first.token + 1)  # not ours to release: nothing happens
    assert await leases.holder("ch") is not None
    await leases.release("ch", first.token)
    assert await leases.holder("ch") is None
    assert await leases.leases() == {}
    second = await leases.claim("ch", B, ttl)
    assert second.token is not None
    assert second.token > first.token
    assert not await leases.renew("ch", first.token, ttl)


async def test_renewal_keeps_a_lease_past_its_first_ttl(store: Store, clock: Clock) -> None:
    leases, unit = store.leases, store.unit
    claim = await leases.claim("ch", A, 2 * unit)
    assert claim.token is not None
    assert await leases.renew("ch", claim.token, 20 * unit)
    await store.wait(4)
    holder = await leases.holder("ch")
    assert holder is not None
    assert holder.token == claim.token


async def test_a_lapsed_lease_is_claimed_anew_and_fences_its_old_owner(
    store: Store, clock: Clock
) -> None:
    leases, unit = store.leases, store.unit
    old = await leases.claim("ch", A, 2 * unit)
    assert old.token is not None
    await store.wait(4)
    assert await leases.holder("ch") is None
    assert await leases.leases() == {}
    new = await leases.claim("ch", B, 20 * unit)
    assert new.token is not None
    assert new.token > old.token
    # The paused old owner wakes up: none of its actions counts any more.
    assert not await leases.renew("ch", old.token, 20 * unit)
    assert not await leases.note_session("ch", old.token, {"command_url": "http://e/cmd"})
    assert not await leases.take_engine_slot("http://e", "ch", old.token, 3, 20 * unit)
    await leases.release("ch", old.token)
    holder = await leases.holder("ch")
    assert holder is not None
    assert (holder.instance.id, holder.token, holder.session) == ("b", new.token, None)
    assert await leases.engine_loads() == {}


async def test_the_session_is_kept_beside_the_lease(store: Store, clock: Clock) -> None:
    leases, ttl = store.leases, 10 * store.unit
    claim = await leases.claim("ch", A, ttl)
    assert claim.token is not None
    session = {"command_url": "http://engine/cmd", "started": {"playback_session_id": "p1"}}
    assert await leases.note_session("ch", claim.token, session)
    other = await leases.claim("ch", B, ttl)
    assert other.holder is not None
    assert other.holder.session == session
    assert (await leases.leases())["ch"].session == session
    assert await leases.note_session("ch", claim.token, None)
    holder = await leases.holder("ch")
    assert holder is not None
    assert holder.session is None


async def test_engine_slots_are_counted_across_channels_up_to_the_limit(
    store: Store, clock: Clock
) -> None:
    leases, ttl = store.leases, 20 * store.unit
    tokens = {}
    for channel in ("c1", "c2", "c3", "c4"):
        claim = await leases.claim(channel, A if channel != "c2" else B, ttl)
        assert claim.token is not None
        tokens[channel] = claim.token
    e1, e2 = "http://10.0.0.9:6878", "http://10.0.0.10:6878"
    assert await leases.take_engine_slot(e1, "c1", tokens["c1"], 2, ttl)
    assert await leases.take_engine_slot(e1, "c2", tokens["c2"], 2, ttl)
    assert not await leases.take_engine_slot(e1, "c3", tokens["c3"], 2, ttl)
    assert await leases.take_engine_slot(e1, "c1", tokens["c1"], 2, ttl)  # counted: renewed
    assert await leases.take_engine_slot(e2, "c3", tokens["c3"], 2, ttl)
    assert await leases.take_engine_slot(e2, "c4", tokens["c4"], 0, ttl)  # 0: no limit
    assert await leases.engine_loads() == {e1: 2, e2: 2}
    await leases.release_engine_slot(e1, "c1")
    await leases.release_engine_slot(e1, "never-counted")
    assert await leases.take_engine_slot(e1, "c3", tokens["c3"], 2, ttl)
    assert await leases.engine_loads() == {e1: 2, e2: 2}


async def test_engine_slots_lapse_unless_renewed(store: Store, clock: Clock) -> None:
    leases, unit = store.leases, store.unit
    c1 = await leases.claim("c1", A, 20 * unit)
    c2 = await leases.claim("c2", A, 20 * unit)
    assert c1.token is not None
    assert c2.token is not None
    engine = "http://engine:6878"
    assert await leases.take_engine_slot(engine, "c1", c1.token, 1, 2 * unit)
    assert not await leases.take_engine_slot(engine, "c2", c2.token, 1, 2 * unit)
    await store.wait(4)
    assert await leases.engine_loads() == {}
    assert await leases.take_engine_slot(engine, "c2", c2.token, 1, 20 * unit)
    assert await leases.engine_loads() == {engine: 1}


async def test_heartbeats_show_the_instances_alive_oldest_first(store: Store, clock: Clock) -> None:
    leases, unit = store.leases, store.unit
    await leases.heartbeat(B, 20 * unit)
    await leases.heartbeat(A, 2 * unit)
    assert await leases.instances() == [A, B]
    await store.wait(4)
    assert await leases.instances() == [B]
    later = Instance(B.id, B.url, B.started_at, facts={"channels": 5})
    await leases.heartbeat(later, 20 * unit)
    assert await leases.instances() == [later]


async def test_every_call_fails_plainly_while_the_store_is_down_and_works_after_it_is_back(
    store: Store, clock: Clock
) -> None:
    leases, ttl = store.leases, 10 * store.unit
    before = await leases.claim("ch", A, ttl)
    assert before.token is not None
    await leases.heartbeat(A, ttl)
    await store.outage()
    calls = [
        leases.claim("ch", B, ttl),
        leases.renew("ch", before.token, ttl),
        leases.release("ch", before.token),
        leases.holder("ch"),
        leases.note_session("ch", before.token, None),
        leases.take_engine_slot("http://e", "ch", before.token, 1, ttl),
        leases.release_engine_slot("http://e", "ch"),
        leases.engine_loads(),
        leases.heartbeat(A, ttl),
        leases.instances(),
        leases.leases(),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            await call
    await store.restart()
    # Everything was lost with the restart; tokens still only grow.
    assert await leases.holder("ch") is None
    assert not await leases.renew("ch", before.token, ttl)
    assert await leases.instances() == []
    after = await leases.claim("ch", B, ttl)
    assert after.token is not None
    assert after.token > before.token
