"""Rendered playlists, kept until what they list changes. Pure data, no I/O, no Trio.

Between two changes of a channel's window (a segment in or out, a discontinuity, the end) every
player that asks with the same URL scheme gets the same playlist: it is rendered once and the
same ``bytes`` object is served to all of them. What makes two requests' playlists differ, the
*variant* (the URL prefix the media URLs are built under), is part of the key.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

__all__ = ["RenderedPlaylists"]

VARIANTS = 16
"""Variants kept per state at most: a handful in practice (one per URL prefix served)."""


class RenderedPlaylists:
    """One playlist's renderings for its current ``state``, one ``bytes`` per variant.

    ``state`` is anything hashable that changes whenever the playlist's content may (the
    window's version, whether it ended...); a new state forgets every rendering of the old one.
    """

    def __init__(self, variants: int = VARIANTS) -> None:
        self._variants = variants
        self._state: Hashable = None
        self._bodies: dict[Hashable, bytes] = {}
        self.renders = 0
        """Renderings made (a request served from the cache makes none)."""

    def get(self, state: Hashable, variant: Hashable, render: Callable[[], str]) -> bytes:
        """The playlist of ``variant`` in ``state``: ``render()`` encoded the first time, the
        same object after that until ``state`` changes."""
        if state != self._state:
            self._state = state
            self._bodies.clear()
        body = self._bodies.get(variant)
        if body is None:
            if len(self._bodies) >= self._variants:  # bounded whatever callers pass as variants
                self._bodies.clear()
            body = self._bodies[variant] = render().encode()
            self.renders += 1
        return body
