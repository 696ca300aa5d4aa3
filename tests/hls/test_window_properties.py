"""Properties of what players get, for any history of upstream playlists (hypothesis).

For every history the upstream may go through (segments appearing, the list sliding past segments
we never saw, discontinuities, segments that answer 404, the upstream restarting its numbering),
the playlists a player reloads from us:

- never go backwards: media sequence and discontinuity sequence never decrease;
- list only segments that are there: every listed URL answers 200, with the upstream's bytes;
- never lose a discontinuity: a segment the upstream marked, or one after media we never got,
  carries ``#EXT-X-DISCONTINUITY``; and a segment keeps its discontinuity number in every
  playlist that lists it.

Each example runs the whole proxy in memory on Trio's virtual clock.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import httpx
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trioproxy.hls.m3u import lines
from trioproxy.hls.playlist import render_media_playlist
from trioproxy.hls.window import SegmentWindow
from trioproxy.testing.harness import harness

from ..origin import Origin, origin_config

KEY = "d" * 40
ENTRY = "/live/chan/index.m3u8"


@dataclass(frozen=True)
class Step:
    new: int
    """Segments the upstream adds before the next reload."""
    discontinuity: bool
    """The first of them follows a discontinuity."""
    list_size: int
    restart: bool
    """The upstream starts its numbering over; its next segment follows a discontinuity."""
    missing: bool
    """The newest segment answers 404."""


steps = st.builds(
    Step,
    new=st.integers(0, 4),
    discontinuity=st.booleans(),
    list_size=st.integers(1, 6),
    restart=st.sampled_from([False, False, False, True]),
    missing=st.booleans(),
)


@dataclass
class UpstreamSegment:
    id: int
    sequence: int
    discontinuity: bool
    missing: bool

    @property
    def path(self) -> str:
        return f"/s/{self.id}{'-missing' if self.missing else ''}.ts"


def upstream_playlists(history: list[Step]) -> tuple[list[str], dict[str, UpstreamSegment]]:
    """The upstream's playlist after each step, and every segment it ever had, by path."""
    texts: list[str] = []
    by_path: dict[str, UpstreamSegment] = {}
    epoch: list[UpstreamSegment] = []
    earlier_discontinuities = 0  # in epochs before this one: a restart keeps counting them
    restarted = False
    next_id = 0
    for step in history:
        if step.restart and epoch:
            earlier_discontinuities += sum(s.discontinuity for s in epoch)
            epoch, restarted = [], True
        for n in range(step.new):
            flagged = (step.discontinuity and n == 0) or restarted
            restarted = False
            missing = step.missing and n == step.new - 1
            segment = UpstreamSegment(next_id, len(epoch), flagged, missing)
            next_id += 1
            epoch.append(segment)
            by_path[segment.path] = segment
        listed = epoch[-step.list_size :]
        dropped = epoch[: len(epoch) - len(listed)]
        rows = ["#EXTM3U", "#EXT-X-TARGETDURATION:2"]
        rows.append(f"#EXT-X-MEDIA-SEQUENCE:{listed[0].sequence if listed else len(epoch)}")
        sequence = earlier_discontinuities + sum(s.discontinuity for s in dropped)
        rows.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{sequence}")
        for segment in listed:
            if segment.discontinuity:
                rows.append("#EXT-X-DISCONTINUITY")
            rows += ["#EXTINF:2.0,", segment.path]
        texts.append("\n".join(rows) + "\n")
    return texts, by_path


@dataclass
class Published:
    media_sequence: int
    discontinuity_sequence: int
    segments: list[tuple[int, bool, str]]
    """(our sequence, discontinuity tag, upstream path) of each listed segment."""


async def watch(texts: list[str]) -> list[Published]:
    origin = Origin(entry=ENTRY)
    origin.playlists[ENTRY] = lambda load: texts[min(load, len(texts)) - 1]
    config = origin_config(hls_initial_segments=1, upstream_timeout=30.0)
    published: list[Published] = []
    async with harness(config, origin=origin) as h:
        first = await h.client.get("/ace/getstream", params={"id": KEY})
        url = first.headers["location"]
        for _ in range(3 * len(texts) + 6):
            response = await h.client.get(url)
            if response.status_code == 200:
                published.append(await read(h.client, response.text))
            await trio.sleep(1.0)
    return published


async def read(client: httpx.AsyncClient, text: str) -> Published:
    media_sequence = discontinuity_sequence = 0
    flagged = False
    segments = []
    for line in lines(text):
        if line.name == "EXT-X-MEDIA-SEQUENCE":
            media_sequence = int(line.value)
        elif line.name == "EXT-X-DISCONTINUITY-SEQUENCE":
            discontinuity_sequence = int(line.value)
        elif line.name == "EXT-X-DISCONTINUITY":
            flagged = True
        elif line.is_uri:
            served = await client.get(line.value)
            assert served.status_code == 200, f"listed but not servable: {line.value}"
            path = served.content.split(b"|", 1)[0].decode()
            sequence = int(line.value.rsplit("/", 1)[1].removesuffix(".ts"))
            segments.append((sequence, flagged, path))
            flagged = False
    assert segments, "a 200 playlist with no segments"
    assert segments[0][0] == media_sequence
    return Published(media_sequence, discontinuity_sequence, segments)


def check(published: list[Published], by_path: dict[str, UpstreamSegment]) -> None:
    for before, after in itertools.pairwise(published):
        assert after.media_sequence >= before.media_sequence
        assert after.discontinuity_sequence >= before.discontinuity_sequence
    numbers: dict[int, int] = {}
    delivered: dict[int, tuple[bool, str]] = {}
    for playlist in published:
        count = playlist.discontinuity_sequence
        for sequence, flagged, path in playlist.segments:
            count += flagged
            assert numbers.setdefault(sequence, count) == count, "discontinuity number changed"
            assert delivered.setdefault(sequence, (flagged, path)) == (flagged, path)
    ordered = sorted(delivered.items())
    for (previous, (_, previous_path)), (sequence, (flagged, path)) in itertools.pairwise(ordered):
        assert sequence == previous + 1, "our sequence numbers have a hole"
        upstream, upstream_before = by_path[path], by_path[previous_path]
        if upstream.discontinuity or upstream.id != upstream_before.id + 1:
            assert flagged, f"discontinuity lost before {path} (after {previous_path})"


@settings(max_examples=60, deadline=None)
@given(st.lists(steps, min_size=1, max_size=10))
def test_players_never_see_the_window_go_back(history: list[Step]) -> None:
    texts, by_path = upstream_playlists(history)
    published = trio.run(watch, texts, clock=trio.testing.MockClock(autojump_threshold=0))
    check(published, by_path)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.tuples(st.just("append"), st.booleans()), st.just(("gap", False))),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 8),
)
def test_window_rendering_is_monotonic(operations: list[tuple[str, bool]], size: int) -> None:
    """The pure window alone: what it renders after any appends and gaps."""
    window = SegmentWindow(max(size, 4))
    last: tuple[int, int] | None = None
    flags: dict[int, int] = {}
    for operation, discontinuity in operations:
        if operation == "gap":
            window.mark_gap()
            continue
        window.append(b"x", 2.0, discontinuity=discontinuity)
        listed = window.latest(size)
        text = render_media_playlist(
            listed, target_duration=window.target_duration, segment_uri=lambda s: f"{s.sequence}"
        )
        published = asyncless_read(text)
        assert last is None or published >= last
        last = published
        for segment in listed:
            assert window.get(segment.sequence) is segment
            assert flags.setdefault(segment.sequence, segment.discontinuity_count) == (
                segment.discontinuity_count
            )


def asyncless_read(text: str) -> tuple[int, int]:
    values = {line.name: line.value for line in lines(text)}
    return int(values["EXT-X-MEDIA-SEQUENCE"]), int(values.get("EXT-X-DISCONTINUITY-SEQUENCE", 0))
