"""The orchestrator's HTTP API, as one client: stream events, engines, running and looping streams.

Every request carries the API key when one is configured. Functions take no timeout: callers put
deadlines around them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import httpx

__all__ = ["Event", "EventKind", "Orchestrator"]

log = logging.getLogger(__name__)

EventKind = Literal["stream_started", "stream_ended"]


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    stream_id: str
    payload: dict[str, Any]


class Orchestrator:
    """The orchestrator's event endpoints, over the registry's shared HTTP client."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str | None) -> None:
        self._http = http
        self.base_url = base_url
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._auth_error_logged = False
        self.delivered = 0
        self.dropped = 0

    async def post(self, event: Event) -> httpx.Response:
        return await self._http.post(
            f"{self.base_url}/events/{event.kind}", json=event.payload, headers=self._headers
        )

    async def get(self, path: str) -> httpx.Response:
        """GET ``path`` (e.g. ``/streams``) with our credentials."""
        return await self._http.get(self.base_url + path, headers=self._headers)

    def auth_failed(self, status: int) -> None:
        """Log a rejected key once per process, at error level; later ones at debug."""
        if self._auth_error_logged:
            log.debug("orchestrator still rejects our credentials (HTTP %d)", status)
            return
        self._auth_error_logged = True
        hint = "API_KEY is not set" if not self._headers else "API_KEY is wrong"
        log.error(
            "configuration error: the orchestrator rejected our request with HTTP %d (%s); "
            "events are dropped until API_KEY matches the orchestrator's",
            status,
            hint,
        )
