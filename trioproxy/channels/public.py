"""What ``/proxy/status`` shows a caller without the key: an allow-list of its fields.

The status is built whole, once (:mod:`.status`); :func:`public_status` keeps of it only the
fields named here, each through its rule, so a field the status gains stays private until it is
named here. The rules:

- ``as_is``: our own names, states and counts;
- ``counts``: a table of numbers (nested tables too); anything else in it is left out;
- ``host_only``: an upstream's URL as ``scheme://host[:port]``
  (:func:`~trioproxy.errors.public_url`), unless that is hidden (a cluster instance's address:
  ``<redacted>``). A source's URL is an IPTV account (``user:pass@``, ``/live/USER/PASS/``,
  ``?password=``); an engine's playback, stat and command URLs carry its session;
- ``redacted``: a reason or an error, its URLs cut to their host and the channel's secrets left
  out (:func:`~trioproxy.errors.redact`);
- ``content_key``: a content id as it is, a source's URL as ``host_only``;
- ``fields(...)``: a table, of which only the fields named; ``each(rule)``: a list.

Never shown: engine session and stream ids, viewers' addresses (a TS player's label), a
variant's URI, the incarnation while player keys are set (the app drops it); of the cluster,
instances' ids and addresses (a relay's owner among them) and their heartbeats' relay tokens:
counts and roles only (:mod:`.cluster_status`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from ..errors import REDACTED, public_url, redact

__all__ = ["public_status", "url_secrets"]

Hidden = tuple[str, ...]
Rule = Callable[[Any, Hidden], Any]

_CONTENT_ID = re.compile(r"[0-9a-f]{40}")
_SHORTEST_SECRET = 3
"""Shorter parts of a URL are not looked for in texts: they would cut up ordinary words."""


def as_is(value: Any, hidden: Hidden) -> Any:
    return value


def counts(value: Any, hidden: Hidden) -> Any:
    """Numbers (and tables of them) only."""
    if not isinstance(value, dict):
        return None
    kept: dict[str, Any] = {}
    for name, item in value.items():
        if isinstance(item, dict):
            kept[name] = counts(item, hidden)
        elif item is None or isinstance(item, int | float):
            kept[name] = item
    return kept


def host_only(value: Any, hidden: Hidden) -> Any:
    if value is None:
        return None
    shown = public_url(str(value))
    return REDACTED if shown and shown in hidden else shown


def redacted(value: Any, hidden: Hidden) -> Any:
    return None if value is None else redact(str(value), *hidden)


def content_key(value: Any, hidden: Hidden) -> Any:
    """A content id or infohash as it is (it names the channel); a source's URL as its host."""
    text = str(value)
    return text if _CONTENT_ID.fullmatch(text) else public_url(text)


def hosts_as_keys(value: Any, hidden: Hidden) -> Any:
    """A count per upstream URL: the URLs in their public form (counts of one form summed)."""
    kept: dict[str, Any] = {}
    for url, count in (value or {}).items():
        shown = public_url(str(url))
        kept[shown] = kept.get(shown, 0) + count
    return kept


def fields(**rules: Rule) -> Rule:
    """A table of which only the fields named are shown, each through its rule."""

    def kept(value: Any, hidden: Hidden) -> Any:
        if not isinstance(value, dict):
            return None
        return {name: rule(value[name], hidden) for name, rule in rules.items() if name in value}

    return kept


def each(rule: Rule) -> Rule:
    """A list, every item through ``rule``."""
    return lambda value, hidden: None if value is None else [rule(item, hidden) for item in value]


SESSION = fields(
    engine=host_only,
    container_id=as_is,
    opened=as_is,
    opened_seconds_ago=as_is,
    ended=as_is,
    ended_seconds_ago=as_is,
    reason=redacted,
)
TS_PLAYER = fields(connected_seconds=as_is, bytes_sent=as_is, lag_segments=as_is, lag_seconds=as_is)
CHANNEL_CLUSTER = fields(role=as_is, since_data_seconds=as_is, relays=each(TS_PLAYER))
CLUSTER = fields(
    instance=fields(
        store_reachable=as_is, store_failures=as_is, takeovers=as_is, lease_seconds=as_is
    ),
    instances=each(fields(me=as_is, started_at=as_is, facts=counts)),
    channels=counts,
)
ENGINE_STATS = fields(
    status=redacted,
    peers=as_is,
    speed_down_kbps=as_is,
    speed_up_kbps=as_is,
    downloaded_bytes=as_is,
    uploaded_bytes=as_is,
    livepos=counts,
    age_seconds=as_is,
)
CHANNEL = fields(
    channel=as_is,
    incarnation=as_is,
    key_type=as_is,
    key=content_key,
    state=as_is,
    end_reason=redacted,
    age_seconds=as_is,
    engine=fields(url=host_only, container_id=as_is),
    clients=as_is,
    waiting=as_is,
    ts=fields(players=each(TS_PLAYER), served=as_is, cut_lagging=as_is, max_lag_segments=as_is),
    buffer=counts,
    events=counts,
    engine_stats=ENGINE_STATS,
    sessions=each(SESSION),
    failovers=as_is,
    upstream=fields(variant=fields(bandwidth=as_is), resources=as_is, ended=as_is),
    cluster=CHANNEL_CLUSTER,
)
REGISTRY = fields(
    cluster=CLUSTER,
    channels=each(CHANNEL),
    closing=each(CHANNEL),
    engines=each(
        fields(
            url=host_only,
            container_id=as_is,
            forwarded=as_is,
            channels=as_is,
            max_channels=as_is,
            breaker_open_seconds=as_is,
        )
    ),
    engine_list_error=redacted,
    events=fields(orchestrator=host_only, api=as_is, delivered=as_is, dropped=as_is),
    channels_started=as_is,
    failovers=as_is,
    engine_stops_pending=as_is,
    limits=fields(
        max_channels=as_is,
        channels=as_is,
        max_players_per_channel=as_is,
        max_opening_per_engine=as_is,
        opening=hosts_as_keys,
        refused=counts,
        memory=counts,
    ),
    limits_per_address=counts,
    orchestrator_streams=fields(
        looping=as_is, reads=as_is, stopped_by_orchestrator=as_is, error=redacted
    ),
    config=counts,
    guide=fields(
        channels=as_is,
        programmes=as_is,
        bytes=as_is,
        updated_at=as_is,
        sources=each(
            fields(
                url=host_only,
                fetched_at=as_is,
                fetched_seconds_ago=as_is,
                error=redacted,
                failed_at=as_is,
                failures=as_is,
                next_fetch_seconds=as_is,
                channels=as_is,
                programmes=as_is,
                received_bytes=as_is,
                cached=as_is,
            )
        ),
    ),
)


def public_status(status: dict[str, Any], hidden: Iterable[str]) -> dict[str, Any]:
    """``status`` (the whole status) as a caller without the key sees it; ``hidden``: strings
    no text may show (session ids, a source's credentials)."""
    shown: dict[str, Any] = REGISTRY(status, tuple(hidden))
    return {"redacted": True, **shown}


def url_secrets(url: str) -> list[str]:
    """What of ``url`` is secret even outside the URL: its user name and password, and the
    values of its query (``?username=U&password=P``), as written and decoded."""
    try:
        parts = urlsplit(url)
        found = [parts.username, parts.password]
    except ValueError:
        return []
    found += [pair.partition("=")[2] for pair in parts.query.split("&")]
    secrets = {form for part in found if part for form in (part, unquote_plus(part))}
    return sorted((s for s in secrets if len(s) >= _SHORTEST_SECRET), key=len, reverse=True)
