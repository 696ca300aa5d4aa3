"""Validation of what clients send: stream ids, channel names, client tokens."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Literal

from ..errors import BadRequest
from ..upstream.engine import KeyType

__all__ = [
    "client_identity",
    "is_channel_name",
    "is_client_token",
    "parse_format",
    "parse_stream_key",
]

_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}")


def parse_stream_key(args: Mapping[str, str]) -> tuple[KeyType, str]:
    """The ``id=`` or ``infohash=`` a client asked for: exactly one, 40 hex digits, lower-cased."""
    content_id = args.get("id")
    infohash = args.get("infohash")
    if content_id is not None and infohash is not None:
        raise BadRequest("give either id= or infohash=, not both")
    key_type: KeyType
    if content_id is not None:
        key_type, value = "content_id", content_id
    elif infohash is not None:
        key_type, value = "infohash", infohash
    else:
        raise BadRequest("missing id= (content id) or infohash=")
    if not _HEX40.fullmatch(value):
        name = "id" if key_type == "content_id" else "infohash"
        raise BadRequest(f"{name}= must be 40 hexadecimal digits")
    return key_type, value.lower()


def parse_format(value: str | None, stream_mode: Literal["HLS", "TS"]) -> Literal["hls", "ts"]:
    """The ``format=`` a client asked for (``hls`` or ``ts``); without one, ``STREAM_MODE``'s."""
    wanted = (value if value is not None else stream_mode).strip().lower()
    if wanted == "hls":
        return "hls"
    if wanted == "ts":
        return "ts"
    raise BadRequest("format= must be hls or ts")


def is_channel_name(text: str) -> bool:
    return _HEX40.fullmatch(text) is not None and text == text.lower()


def is_client_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def client_identity(token: str | None, session_header: str | None, address: str, agent: str) -> str:
    """Tell players apart: our token, else the player's own session header, else address + agent."""
    if token is not None and is_client_token(token):
        return "t:" + token
    if session_header and len(session_header) <= 128:
        return "s:" + hashlib.sha256(session_header.encode("utf-8", "replace")).hexdigest()[:16]
    digest = hashlib.sha256(f"{address}\x00{agent}".encode("utf-8", "replace")).hexdigest()
    return "a:" + digest[:16]
