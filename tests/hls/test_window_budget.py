"""Windows and accounts sharing one memory budget (pure bookkeeping)."""

from __future__ import annotations

import pytest

from trioproxy.hls.window import MemoryBudget, OverBudget, SegmentWindow


def test_a_reserve_is_set_aside_and_beyond_it_accounts_share_what_is_free() -> None:
    budget = MemoryBudget(1000)
    first = budget.open(300)
    second = budget.open(300)
    assert first is not None
    assert second is not None
    assert budget.open(401) is None  # 600 set aside: 400 free
    assert (budget.charged, budget.free) == (600, 400)
    first.add(200)  # within its reserve: the budget's free does not move
    assert (first.charge, budget.free) == (300, 400)
    first.add(350)  # 250 beyond its reserve come out of what is free
    assert (first.charge, budget.free, budget.held) == (550, 150, 550)
    assert second.room == 450  # its whole reserve, and what is free
    with pytest.raises(OverBudget):
        second.add(451)
    first.close()
    assert (budget.charged, budget.held, budget.accounts) == (300, 0, 1)
    assert first.room == 0


def test_under_pressure_a_window_drops_its_oldest_beyond_the_served_window() -> None:
    budget = MemoryBudget(1000)
    account = budget.open(300)
    assert account is not None
    window = SegmentWindow(20, account=account, keep=3)
    for _ in range(9):
        window.append(bytes(100), 2.0)
    assert len(window) == 9  # 900 bytes: the budget still had room
    other = budget.open(100)
    assert other is not None
    window.append(bytes(100), 2.0)  # 100 more do not fit: the oldest goes
    assert [s.sequence for s in window] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert window.dropped_for_budget == 1
    assert budget.charged == 1000
    window.append(bytes(600), 2.0)  # drops down to the newest 3, and then it fits
    assert [s.sequence for s in window] == [7, 8, 9, 10]
    assert (window.total_bytes, account.held, budget.charged) == (900, 900, 1000)
    with pytest.raises(OverBudget):  # the served window holds all the budget leaves it
        window.append(bytes(400), 2.0)
    assert [s.sequence for s in window] == [8, 9, 10]  # dropped down to keep, then refused
    assert window.next_sequence == 11  # the refused segment took no number
    window.release()
    assert (budget.charged, budget.held, budget.segments_held) == (100, 0, 0)
    assert (len(window), window.total_bytes) == (0, 0)  # nothing held past its account


def test_the_mean_segment_size_is_of_what_is_held_now() -> None:
    budget = MemoryBudget(10_000)
    assert budget.segment_size(default=777) == 777
    account = budget.open(0)
    assert account is not None
    window = SegmentWindow(2, account=account)
    for size in (100, 200, 400):
        window.append(bytes(size), 2.0)
    assert budget.segment_size(default=777) == 300  # 200 and 400: the 100 left the window
    assert budget.held == 600


def test_reclaim_takes_the_oldest_surplus_of_any_window_and_nothing_when_not_enough() -> None:
    budget = MemoryBudget(2600)

    def window(size: int, reserve: int, keep: int) -> SegmentWindow:
        account = budget.open(reserve)
        assert account is not None
        return SegmentWindow(size, account=account, keep=keep)

    a, b = window(10, 300, 3), window(10, 300, 3)
    c = window(10, 600, 3)  # all it will hold is within its reserve
    finished = window(4, 0, 4)  # finished content: served whole
    for _ in range(6):
        for live in (a, b, c):
            live.append(bytes(100), 2.0)
    for _ in range(4):
        finished.append(bytes(100), 2.0)
    assert budget.free == 400  # 600 + 600 + 600 + 400 charged

    def held() -> list[list[int]]:
        return [[s.sequence for s in w] for w in (a, b, c, finished)]

    before = held()
    assert not budget.reclaim(1100)  # 400 free and 2 × 300 beyond the served windows
    assert held() == before
    assert budget.reclaimed == 0

    assert budget.reclaim(700)
    assert held() == [[2, 3, 4, 5], [1, 2, 3, 4, 5], before[2], before[3]]  # a0, b0, a1
    assert (budget.free, budget.reclaimed, a.dropped_for_budget) == (700, 3, 2)
