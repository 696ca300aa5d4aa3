"""A channel's media playlist as the HTTP layer serves it: ``bytes``, rendered once per change of
the channel's window and URL prefix, and the same object for every request in between.

Every HTTP path that answers a media playlist (the Quart route, the lean HTTP/1.1 path) calls
:func:`media_playlist`. What tells two requests' playlists apart is the prefix the media URLs
are built under (``root_path``) alone: media URLs carry no player key and no client token
(:mod:`.keys`), so keyed players and players with their own token share one rendering.
"""

from __future__ import annotations

from ..channels.channel import Channel
from . import urls

__all__ = ["media_playlist"]


def media_playlist(channel: Channel, root_path: str) -> bytes:
    """The media playlist of ``channel`` with its media URLs under ``root_path``."""
    return channel.playlist(root_path, lambda: render(channel, root_path))


def render(channel: Channel, root_path: str) -> str:
    """The playlist rendered afresh (what :func:`media_playlist` keeps)."""
    name, incarnation = channel.name, channel.incarnation
    return channel.render_playlist(
        lambda segment: urls.segment_url(
            root_path, name, incarnation, segment.sequence, segment.meta.extension
        ),
        lambda number: urls.resource_url(
            root_path, name, incarnation, channel.resources.filename(number)
        ),
    )
