"""The channel list (``TRIOPROXY_CHANNELS_FILE``) as media servers and IPTV apps number it.

An HDHomeRun lineup numbers its channels (``GuideNumber``: the line order, from 1); the Xtream
API names each by a ``stream_id`` (an integer) and each group by a ``category_id``. Those two
are drawn from a hash of what they name — the stream (and, for the same stream listed twice,
which time), the group's name — so an app's favourites and a media server's guide mapping
survive restarts and edits of other lines. Two that would collide take the next free number,
in the file's order. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from ..channels.join import Content, Source
from ..config import Config
from ..config.channels import ChannelEntry
from ..errors import NotFound, Unauthorized
from .logins import XtreamLogins

__all__ = ["Lineup", "Listed", "check_login", "want_of", "xtream_want"]

_ID_BITS = 28
"""Ids stay below 2**28: positive in a 32-bit integer, which apps parse them into."""
UNGROUPED = "Other"
"""The category of channels listed without a group."""


def _number(text: str, taken: set[int]) -> int:
    number = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> (32 - _ID_BITS)
    number = number or 1
    while number in taken:
        number = number % ((1 << _ID_BITS) - 1) + 1
    taken.add(number)
    return number


@dataclass(frozen=True, slots=True)
class Listed:
    """One channel of the list, with its numbers."""

    number: int
    """Its place in the list, from 1: the HDHomeRun ``GuideNumber``."""
    stream_id: int
    """The Xtream ``stream_id``."""
    category_id: int
    category: str
    entry: ChannelEntry


class Lineup:
    """The numbered channels of a channel list."""

    def __init__(self, channels: tuple[ChannelEntry, ...]) -> None:
        streams: set[int] = set()
        groups: dict[str, int] = {}
        taken_groups: set[int] = set()
        seen: Counter[str] = Counter()
        listed = []
        for number, entry in enumerate(channels, start=1):
            stream = f"{entry.kind}:{entry.key}"
            seen[stream] += 1
            if seen[stream] > 1:
                stream += f"#{seen[stream]}"
            category = entry.group or UNGROUPED
            if category not in groups:
                groups[category] = _number("group:" + category, taken_groups)
            listed.append(
                Listed(number, _number(stream, streams), groups[category], category, entry)
            )
        self.channels = tuple(listed)
        self.categories = tuple((number, name) for name, number in groups.items())
        """``(category_id, name)`` of each group, in the order of their first channel."""
        self._by_stream_id = {channel.stream_id: channel for channel in listed}

    def find(self, stream_id: int) -> Listed | None:
        return self._by_stream_id.get(stream_id)


def want_of(entry: ChannelEntry, config: Config) -> Content | Source:
    """What joining the channel of ``entry`` asks for (its source must be configured: checked
    at start-up)."""
    if entry.kind == "source":
        url = config.source_url(entry.key)
        assert url is not None
        return Source(entry.key, url)
    return Content(entry.kind, entry.key)


def check_login(logins: XtreamLogins, user: str | None, password: str | None) -> None:
    """Raise unless the Xtream API is on (404) and ``user`` with ``password`` is a login (401)."""
    if not logins.enabled:
        raise NotFound("no Xtream API here: set TRIOPROXY_XTREAM_USERS")
    if not logins.valid(user, password):
        raise Unauthorized("wrong Xtream user name or password")


def xtream_want(
    lineup: Lineup, logins: XtreamLogins, config: Config, user: str, password: str, stream_id: int
) -> Content | Source:
    """What an Xtream stream URL plays: its login checked, its stream id found (else 404)."""
    check_login(logins, user, password)
    channel = lineup.find(stream_id)
    if channel is None:
        raise NotFound(f"no stream {stream_id} in the channel list")
    return want_of(channel.entry, config)
