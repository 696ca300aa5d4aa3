"""The engine watch on the virtual clock: a death is heard the moment the engine closes its
connection and refuses a new one; nothing else ends it, and it never connects in a tight loop."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
import trio
import trio.testing

from trioproxy.errors import EngineError
from trioproxy.upstream.liveness import CONNECT_TIMEOUT, refused, watch_engine

PACE = 1.0


class Port:
    """An engine's port as the watch sees it. ``answer`` says what each connect meets:
    ``"accept"`` (held open until :meth:`die` or ``close_after`` seconds), ``"refuse"``,
    ``"hang"`` (the connect never completes), or ``"unreachable"``."""

    def __init__(self, close_after: float | None = None, say: bytes = b"") -> None:
        self.answer: Callable[[], str] = lambda: "accept"
        self.close_after = close_after
        self.say = say
        self.connects: list[float] = []
        self._open: list[trio.testing.MemorySendStream] = []
        self._nursery: trio.Nursery | None = None

    async def connect(self, host: str, port: int) -> trio.abc.Stream:
        assert (host, port) == ("engine.test", 6878)
        self.connects.append(trio.current_time())
        answer = self.answer()
        if answer == "hang":
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        if answer == "refuse":
            # As trio.open_tcp_stream raises it: an OSError from the group of every attempt.
            attempts = [ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")]
            message = "all attempts to connect to engine.test:6878 failed"
            raise OSError(message) from ExceptionGroup(message, attempts)
        if answer == "unreachable":
            raise OSError(errno.EHOSTUNREACH, "No route to host")
        ours, theirs = trio.testing.memory_stream_pair()
        self._open.append(theirs.send_stream)
        if self.close_after is not None:
            assert self._nursery is not None
            self._nursery.start_soon(self._close_later, theirs.send_stream, self.close_after)
        return ours

    async def _close_later(self, end: trio.testing.MemorySendStream, after: float) -> None:
        if self.say:  # half-way through, then closed
            await trio.sleep(after / 2)
            await end.send_all(self.say)
            after /= 2
        await trio.sleep(after)
        end.close()

    def die(self) -> None:
        """The process is gone: its connections close, its port refuses."""
        self.answer = lambda: "refuse"
        for end in self._open:
            end.close()


async def _watch(port: Port, nursery: trio.Nursery) -> None:
    port._nursery = nursery
    await watch_engine(port.connect, "engine.test", 6878, pace=lambda: PACE, name="engine-a")


async def test_a_death_is_heard_the_moment_the_connection_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    port = Port()

    async def die_later() -> None:
        await trio.sleep(7.5)
        port.die()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(die_later)
        with pytest.raises(EngineError) as caught:
            await _watch(port, nursery)
    assert trio.current_time() == 7.5  # at once: no wait for a reload
    assert port.connects == [0.0, 7.5]  # the one held connection, then the refused one
    assert "engine-a is gone" in caught.value.message


async def test_an_idle_timeout_costs_one_connect_per_close_and_ends_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    port = Port(close_after=5.0)  # an engine that closes idle connections after 5 s
    async with trio.open_nursery() as nursery:
        with trio.move_on_after(22.0):
            await _watch(port, nursery)
        nursery.cancel_scope.cancel()
    assert port.connects == [0.0, 5.0, 10.0, 15.0, 20.0]


async def test_connections_closed_at_once_are_retried_ever_less_often(
    autojump_clock: trio.testing.MockClock,
) -> None:
    port = Port(close_after=0.0)  # accepted, then closed at once (a proxy with nothing behind)
    async with trio.open_nursery() as nursery:
        with trio.move_on_after(10.0):
            await _watch(port, nursery)
        nursery.cancel_scope.cancel()
    gaps = [round(b - a, 6) for a, b in zip(port.connects, port.connects[1:], strict=False)]
    assert gaps[:5] == [0.05, 0.1, 0.2, 0.4, 0.8]
    assert set(gaps[5:]) == {PACE}  # then once a pace, for as long as it goes on
    assert len(port.connects) <= 5 + 10 / PACE + 1


async def test_what_the_engine_says_before_closing_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    port = Port(close_after=5.0, say=b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    async with trio.open_nursery() as nursery:
        with trio.move_on_after(12.0):
            await _watch(port, nursery)
        nursery.cancel_scope.cancel()
    assert port.connects == [0.0, 5.0, 10.0]


@pytest.mark.parametrize("answer", ["hang", "unreachable"])
async def test_a_connect_that_proves_nothing_ends_nothing(
    autojump_clock: trio.testing.MockClock, answer: str
) -> None:
    port = Port()
    port.answer = lambda: answer
    async with trio.open_nursery() as nursery:
        with trio.move_on_after(3 * CONNECT_TIMEOUT + 1):
            await _watch(port, nursery)
        nursery.cancel_scope.cancel()
    if answer == "hang":  # each connect is given up at its timeout, and tried again at once
        assert port.connects == [0.0, CONNECT_TIMEOUT, 2 * CONNECT_TIMEOUT, 3 * CONNECT_TIMEOUT]
    else:  # tried again once a pace
        assert port.connects == [float(n) for n in range(int(3 * CONNECT_TIMEOUT + 1))]


async def test_a_hung_engine_keeps_the_connection_and_ends_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    port = Port()  # accepts and never closes
    async with trio.open_nursery() as nursery:
        with trio.move_on_after(600.0):
            await _watch(port, nursery)
        nursery.cancel_scope.cancel()
    assert port.connects == [0.0]


def test_refused_means_every_address_refused() -> None:
    refusal = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    unreachable = OSError(errno.EHOSTUNREACH, "no route")
    assert refused(refusal)

    def from_attempts(*attempts: OSError) -> OSError:
        error = OSError("all attempts failed")
        error.__cause__ = ExceptionGroup("all attempts failed", list(attempts))
        return error

    assert refused(from_attempts(refusal, ConnectionRefusedError(errno.ECONNREFUSED, "v6")))
    assert not refused(from_attempts(refusal, unreachable))  # one address may still be alive
    assert not refused(unreachable)
    assert not refused(OSError("all attempts failed"))
