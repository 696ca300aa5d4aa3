"""Rendered playlists are kept per window state and URL variant (pure data)."""

from __future__ import annotations

from trioproxy.hls.rendered import RenderedPlaylists
from trioproxy.hls.window import SegmentWindow


def test_one_bytes_object_per_state_and_variant() -> None:
    cache = RenderedPlaylists()
    calls: list[str] = []

    def render(text: str) -> str:
        calls.append(text)
        return text

    first = cache.get(1, "", lambda: render("a"))
    assert first == b"a"
    assert cache.get(1, "", lambda: render("never")) is first
    prefixed = cache.get(1, "/tv", lambda: render("b"))
    assert prefixed == b"b"
    assert cache.get(1, "/tv", lambda: render("never")) is prefixed
    assert cache.get(1, "", lambda: render("never")) is first
    # A new state forgets every variant of the old one.
    assert cache.get(2, "", lambda: render("c")) == b"c"
    assert cache.get(2, "/tv", lambda: render("d")) == b"d"
    assert calls == ["a", "b", "c", "d"]
    assert cache.renders == 4


def test_variants_kept_are_bounded() -> None:
    cache = RenderedPlaylists(variants=2)
    for variant in range(5):
        cache.get(0, variant, lambda: "x")
    assert cache.renders == 5
    cache.get(0, 4, lambda: "x")
    assert cache.renders == 5  # the newest one is still there


def test_window_version_counts_what_a_playlist_lists() -> None:
    window = SegmentWindow(2)
    versions = [window.version]
    window.append(b"x", 2.0)
    versions.append(window.version)
    window.mark_gap()  # nothing listed changes until the next segment (which carries it)
    assert window.version == versions[-1]
    window.append(b"x", 2.0)
    versions.append(window.version)
    window.append(b"x", 2.0)  # the oldest leaves
    versions.append(window.version)
    window.raise_target_duration(1.5)  # no higher than it was: nothing changes
    assert window.version == versions[-1]
    window.raise_target_duration(6.0)
    versions.append(window.version)
    window.release()
    versions.append(window.version)
    assert versions == sorted(set(versions))
