"""JSON logs: one object per line, naming the channel and engine a line is about."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from trioproxy.cli import setup_logging
from trioproxy.config import load_config
from trioproxy.observability import JsonFormatter, LogContextFilter, bind_log_context
from trioproxy.testing.harness import CONTENT_A, ENGINE_URL, harness


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the ``trioproxy`` loggers write, as JSON lines, at INFO."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(LogContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("trioproxy")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def parsed(out: io.StringIO) -> list[dict[str, str]]:
    lines = out.getvalue().splitlines()
    assert lines
    return [json.loads(line) for line in lines]


async def test_channel_lines_carry_channel_and_engine(
    autojump_clock: trio.testing.MockClock, json_lines: io.StringIO
) -> None:
    async with harness() as h:
        assert (await h.open_playlist()).status_code == 200
        h.registry.stop_channel(CONTENT_A, "stopped by request")
        await trio.sleep(1.0)
    records = parsed(json_lines)
    for record in records:
        assert set(record) >= {"time", "level", "logger", "message"}
        assert record["time"].endswith("+00:00")
    about = [r for r in records if r["logger"].startswith("trioproxy.channels.")]
    messages = [r["message"] for r in about]
    assert any("session" in m and "open on" in m for m in messages)  # the upstream session
    assert any("delivered" in m for m in messages)  # the event sender
    assert any(m.endswith("closed") for m in messages)  # the channel
    for record in about:
        if CONTENT_A in record["message"]:
            assert record["channel"] == CONTENT_A, record
            assert record["engine"] == ENGINE_URL, record


async def test_extra_fields_and_exceptions(json_lines: io.StringIO) -> None:
    log = logging.getLogger("trioproxy.test")
    bind_log_context(channel="bound", engine="http://e:1")
    log.info("about %s", "one", extra={"channel": "given"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = parsed(json_lines)
    assert first == {
        "time": first["time"],
        "level": "INFO",
        "logger": "trioproxy.test",
        "message": "about one",
        "channel": "given",
        "engine": "http://e:1",
    }
    assert second["level"] == "ERROR"
    assert second["channel"] == "bound"
    assert "ValueError: boom" in second["exception"]


def test_setup_logging_json(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", "json")
        logging.getLogger("trioproxy.test").warning("one\nline")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "one\nline"


def test_log_format_setting() -> None:
    assert load_config({}).log_format == "text"
    assert load_config({"TRIOPROXY_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ValueError, match="TRIOPROXY_LOG_FORMAT"):
        load_config({"TRIOPROXY_LOG_FORMAT": "xml"})
