"""Connect errors of the fetch loop: only a refusal at every address means the engine is gone
(the session ends at once); a name that does not resolve, TLS, no route or no free descriptor
is bad luck, retried like any other failure, and the channel plays on."""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from trioproxy.testing.faults import request_kind
from trioproxy.testing.harness import connect_error, default_config, harness, refused_error
from trioproxy.upstream.liveness import refused_in_chain

NO_FAILOVER: dict[str, Any] = {
    "failover_max_switches": 0,
    "failover_playlist_targets": 0.0,
    "failover_stall_targets": 0.0,
}


class FailingOnce(httpx.AsyncBaseTransport):
    """In front of the engine: the next request of each kind in ``causes`` fails to connect
    with its cause (None: refused at every address); every request is recorded."""

    def __init__(self, inner: httpx.AsyncBaseTransport, causes: dict[str, OSError | None]) -> None:
        self.inner = inner
        self.causes = causes
        self.failed: list[tuple[float, str]] = []
        self.answered: list[tuple[float, str]] = []
        """When each request that went through was made, and its path."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        kind = request_kind(path)
        if kind in self.causes:
            cause = self.causes.pop(kind)
            self.failed.append((trio.current_time(), path))
            await trio.lowlevel.checkpoint()
            raise refused_error(request) if cause is None else connect_error(request, cause)
        self.answered.append((trio.current_time(), path))
        return await self.inner.handle_async_request(request)


def _out_of_descriptors() -> OSError:
    error = OSError("all attempts to connect to engine.test:6878 failed")
    error.__cause__ = ExceptionGroup("all attempts", [OSError(errno.EMFILE, "Too many open files")])
    return error


CAUSES = {
    "dns": socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    "tls": ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
    "unreachable": OSError(errno.ENETUNREACH, "Network is unreachable"),
    "emfile": _out_of_descriptors(),
}


@pytest.mark.parametrize("cause", CAUSES.values(), ids=CAUSES.keys())
async def test_a_reload_and_a_download_failing_to_connect_are_retried_and_the_channel_plays_on(
    autojump_clock: trio.testing.MockClock, no_jitter: None, cause: OSError
) -> None:
    async with harness(default_config(**NO_FAILOVER)) as h:
        url = await h.start()
        channel = await h.wait_channel()
        session = h.session_id()
        flaky = FailingOnce(h.engine_transport.inner, {"playlist": cause, "segment": cause})
        h.engine_transport.inner = flaky
        statuses = await h.play(url, until=trio.current_time() + 20.0)
        assert set(statuses) == {200}
        assert [request_kind(path) for _, path in flaky.failed] == ["playlist", "segment"]
        # Each was tried again after the first backoff (0.5 s), and that worked.
        for failed_at, path in flaky.failed:
            assert (failed_at + 0.5, path) in flaky.answered
        # Same session, no gap, nothing ended: the segment that failed once is served.
        assert not channel.closed.is_set()
        assert h.session_id() == session
        segment = int(flaky.failed[1][1].rsplit("/", 1)[1].removesuffix(".ts"))
        assert segment in [s.upstream_sequence for s in channel.window]
        assert channel.window.gaps == 0
        assert h.orchestrator.kinds() == ["stream_started"]


async def test_a_refused_reload_ends_the_session_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(**NO_FAILOVER)) as h:
        channel = await h.wait_channel()
        flaky = FailingOnce(h.engine_transport.inner, {"playlist": None})
        h.engine_transport.inner = flaky
        with trio.fail_after(10):
            await channel.closed.wait()
        ((refused_at, _),) = flaky.failed
        assert [path for at, path in flaky.answered if at > refused_at and "/ace/m/" in path] == []
        assert "engine playlist failing" in (channel.end_reason or "")
        assert h.orchestrator.kinds() == ["stream_started", "stream_ended"]


async def test_a_real_refused_connect_is_told_from_other_connect_errors() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"http://127.0.0.1:{port}/")
    assert refused_in_chain(caught.value)
    request = httpx.Request("GET", "http://engine.test:6878/")
    assert refused_in_chain(refused_error(request))
    assert not any(refused_in_chain(connect_error(request, c)) for c in CAUSES.values())
