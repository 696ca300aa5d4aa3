"""Logs an operator can search: the channel and engine a line is about, and JSON lines.

A channel's task binds ``channel`` and ``engine`` once (:func:`bind_log_context`); every task it
starts inherits them (Trio copies the context into each new task), so every line its session,
fetch loop, health check and event sender log carries them. ``extra={"channel": ...}`` on one
call says the same for a line logged elsewhere.

``TRIOPROXY_LOG_FORMAT=json`` writes each record as one JSON object per line
(:class:`JsonFormatter`): ``time``, ``level``, ``logger``, ``message``, then ``channel`` and
``engine`` when known, and ``exception`` with the traceback when there is one.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "LogContextFilter", "bind_log_context", "log_fields"]

CONTEXT_FIELDS = ("channel", "engine")

_EMPTY: MappingProxyType[str, str] = MappingProxyType({})
_context: ContextVar[MappingProxyType[str, str]] = ContextVar("trioproxy_log", default=_EMPTY)


def bind_log_context(**fields: str | None) -> None:
    """Add ``fields`` (``channel=``, ``engine=``) to every line this task and the tasks it
    starts from now on log; None leaves a field out."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    _context.set(MappingProxyType(merged))


def log_fields() -> MappingProxyType[str, str]:
    """The fields bound in the current task."""
    return _context.get()


class LogContextFilter(logging.Filter):
    """Puts the bound fields on each record (as attributes), unless ``extra=`` set them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False)
