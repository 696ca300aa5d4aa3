"""The orchestrator's HTTP API, as one client: stream events, engines, running and looping streams.

Two APIs are in use (CONTRACT §2 and §2b): v1, the Python orchestrator, and v2, its Go rewrite,
reached on port 8083 or under ``/api/v1`` on port 8000. v2 keys streams by content id and answers
lists in other shapes. :class:`Orchestrator` reads both shapes always, learns which API it talks
to from the answers (or is told by ``TRIOPROXY_ORCHESTRATOR_API``), and sends events that both
accept. Reading the answers is done by pure functions here, next to the client; the events'
bodies are built in :mod:`.orchestrator_events`.

Every request carries the API key when one is configured. Functions take no timeout: callers put
deadlines around them. Failures leave as :class:`OrchestratorError`, whatever the orchestrator
answered: a connection error, a status, a body that is not JSON or nested past what the parser
takes, or JSON of the wrong shape anywhere (a list for an object, a port that is a string or out
of range, null for a field). Callers log it once per episode, not once per read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx

from .engine import Engine
from .orchestrator_events import Event, EventKind, ended_payload, started_payload, stream_id

__all__ = [
    "Api",
    "ApiSetting",
    "Event",
    "EventKind",
    "Orchestrator",
    "OrchestratorAuthError",
    "OrchestratorError",
    "RunningStreams",
    "api_of_list",
    "ended_payload",
    "parse_engines",
    "parse_looping",
    "parse_running",
    "started_payload",
    "stream_id",
]

log = logging.getLogger(__name__)

Api = Literal["v1", "v2"]
ApiSetting = Literal["auto", "v1", "v2"]

ENDED_STATUSES = frozenset({"ended", "stopped", "failed", "error", "closed"})
"""v2 lists every stream it knows, whatever ``?status=`` says: these are the ones no longer
running. Anything else (``started``, ``prebuf``, ``allocating``, ``pending_failover``, a status
added later) still runs: a channel is never stopped because a status is new to us."""

_V2_ENGINE_FIELDS = ("draining", "stream_count", "total_peers")
"""Fields only v2 puts in an engine row: a bare list holding them comes from v2."""

_MALFORMED = (ValueError, TypeError, KeyError, AttributeError, RecursionError)
"""What decoding or reading a malformed answer can raise (``ValueError`` covers JSON and
Unicode decoding errors): it becomes an :class:`OrchestratorError`, never a crash."""

_HOST = re.compile(r"[A-Za-z0-9_.-]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
"""A host name, an IPv4 address or an IPv6 address: what an engine row's ``host`` may be."""

T = TypeVar("T")


class OrchestratorError(Exception):
    """The orchestrator could not be reached or answered something we cannot use."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OrchestratorAuthError(OrchestratorError):
    """The orchestrator refused our key (401/403); already logged once by the client."""


# ---- answers (pure) -----------------------------------------------------------------------------


def api_of_list(payload: Any, rows_key: str, under_api_v1: bool) -> Api | None:
    """Which API answered a list (``/engines`` or ``/streams``), or None when it cannot tell.

    v2's port 8083 wraps lists (``{"engines": [...], "total": n}``); v1 and v2's ``/api/v1``
    answer bare lists, told apart by the base URL or by fields only v2 sends.
    """
    if isinstance(payload, dict) and isinstance(payload.get(rows_key), list):
        return "v2"
    if not isinstance(payload, list):
        return None
    if under_api_v1:
        return "v2"
    rows = [row for row in payload if isinstance(row, dict)]
    if any(field in row for row in rows for field in _V2_ENGINE_FIELDS):
        return "v2"
    return "v1"


def _rows(payload: Any, rows_key: str) -> list[Any]:
    if isinstance(payload, dict) and isinstance(payload.get(rows_key), list):
        rows: list[Any] = payload[rows_key]
        return rows
    if isinstance(payload, list):
        return payload
    raise OrchestratorError(f'/{rows_key} answered neither a list nor {{"{rows_key}": [...]}}')


def parse_engines(payload: Any) -> list[Engine]:
    """Healthy engines from ``GET /engines``, either shape; malformed and draining rows skipped."""
    engines = []
    for row in _rows(payload, "engines"):
        if not isinstance(row, dict) or row.get("health_status") != "healthy":
            continue
        if row.get("draining") is True:  # v2: being emptied, takes no new stream
            continue
        host, port = row.get("host"), row.get("port")
        if not isinstance(host, str) or not host or type(port) is not int:  # not a bool either
            continue
        if not 0 < port < 65536:
            continue
        if not _HOST.fullmatch(host):
            continue  # not a host name or address ("a/b", "user@host", spaces, ...)
        bracketed = f"[{host}]" if ":" in host else host
        container = row.get("container_id")
        engines.append(
            Engine(
                base_url=f"http://{bracketed}:{port}",
                container_id=container if isinstance(container, str) and container else None,
                forwarded=bool(row.get("forwarded")),
            )
        )
    return engines


@dataclass(frozen=True, slots=True)
class RunningStreams:
    """The streams an orchestrator runs, by the key it names them with: our stream id (v1) or
    the content id (v2, lower-cased)."""

    api: Api
    keys: frozenset[str]

    def lists(self, *, stream_id: str | None, content_id: str) -> bool:
        if self.api == "v2":
            return content_id.lower() in self.keys
        return stream_id in self.keys


def parse_running(payload: Any, api: Api) -> RunningStreams:
    """``GET /streams?status=started``, either shape, as the keys of streams still running.

    v2 ignores ``?status=``: rows with an ended status are left out here. A row without an id
    makes the whole answer unusable (ValueError-like :class:`OrchestratorError`): a partial list
    would stop channels that still play.
    """
    keys = set()
    for row in _rows(payload, "streams"):
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise OrchestratorError("/streams listed a stream without an id")
        status = row.get("status")
        if isinstance(status, str) and status.lower() in ENDED_STATUSES:
            continue
        if api == "v1":
            keys.add(row["id"])
            continue
        keys.update(
            value.lower()
            for value in (row["id"], row.get("content_id"), row.get("key"))
            if isinstance(value, str) and value
        )
    return RunningStreams(api, frozenset(keys))


def _decoded(response: httpx.Response) -> Any:
    """The JSON of an answer; anything else (deep nesting included) an OrchestratorError."""
    try:
        return response.json()
    except RecursionError as exc:
        raise OrchestratorError("answered JSON nested too deeply") from exc
    except ValueError as exc:
        raise OrchestratorError("answered something other than JSON") from exc


def parse_looping(payload: Any) -> frozenset[str]:
    """Content ids from ``GET /looping-streams`` (lower-cased)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("stream_ids"), list):
        raise OrchestratorError('/looping-streams did not answer {"stream_ids": [...]}')
    return frozenset(item.lower() for item in payload["stream_ids"] if isinstance(item, str))


# ---- the client ---------------------------------------------------------------------------------


class Orchestrator:
    """Every request to the orchestrator, over the registry's shared HTTP client.

    :attr:`api` is the API it speaks: set by ``TRIOPROXY_ORCHESTRATOR_API``, else learned from
    the answers (None until one tells). It decides how running streams are matched, and shows
    in ``/proxy/status``; events carry the fields of both APIs whatever it is.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str | None,
        api: ApiSetting = "auto",
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        # v1 reads the first header, v2 either.
        self._headers = (
            {"Authorization": f"Bearer {api_key}", "X-API-Key": api_key} if api_key else {}
        )
        self._forced = api != "auto"
        self._under_api_v1 = urlsplit(self.base_url).path.rstrip("/").endswith("/api/v1")
        self.api: Api | None = None if api == "auto" else api
        self.api_reason = "TRIOPROXY_ORCHESTRATOR_API" if self._forced else "not known yet"
        if self.api is None and self._under_api_v1:
            self.api, self.api_reason = "v2", "the URL ends in /api/v1"
        self._detected_once = False
        self._auth_error_logged = False
        self._no_loop_list_logged = False
        self.delivered = 0
        self.dropped = 0

    # ---- which API ------------------------------------------------------------------------

    @property
    def detected(self) -> bool:
        """:meth:`detect` has run once (the API may still be unknown)."""
        return self._detected_once

    def _learn(self, api: Api | None, reason: str) -> None:
        if api is None or self._forced or api == self.api:
            return
        previous, self.api, self.api_reason = self.api, api, reason
        if not self._detected_once:
            return  # detect() logs the first finding, once, at start-up
        if previous is None:
            log.info("orchestrator API: %s (%s)", api, reason)
        else:
            log.warning("orchestrator API changed from %s to %s (%s)", previous, api, reason)

    async def detect(self) -> None:
        """Find out which API the orchestrator speaks (one ``GET /engines``), unless known.

        The first call logs the outcome once; later calls only try again while it is unknown.
        """
        first = not self._detected_once
        if self.api is None:
            try:
                await self.engines()
            except OrchestratorError as exc:
                if first:
                    self.api_reason = f"not known yet: {exc}"
        self._detected_once = True
        if first:
            if self.api is None:
                log.info(
                    "orchestrator %s: API %s",
                    self.base_url,
                    self.api_reason,
                )
            else:
                log.info("orchestrator %s: API %s (%s)", self.base_url, self.api, self.api_reason)

    # ---- requests -------------------------------------------------------------------------

    async def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            response = await self._http.request(
                method, self.base_url + path, json=body, headers=self._headers
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise OrchestratorError(f"{type(exc).__name__}: {exc}") from exc
        except UnicodeError as exc:  # a key the configuration should have refused
            raise OrchestratorError(f"cannot send the request: {exc}") from exc
        if response.status_code in (401, 403):
            self.auth_failed(response.status_code)
            raise OrchestratorAuthError(
                f"{path}: HTTP {response.status_code}", response.status_code
            )
        return response

    async def _get_json(self, path: str) -> Any:
        response = await self._send("GET", path)
        if response.status_code != 200:
            raise OrchestratorError(f"HTTP {response.status_code}", response.status_code)
        return _decoded(response)

    async def _read(self, path: str, read: Callable[[Any], T]) -> T:
        """``GET path``, read with ``read``; an answer it cannot read is an OrchestratorError."""
        payload = await self._get_json(path)
        try:
            return read(payload)
        except OrchestratorError:
            raise
        except _MALFORMED as exc:
            raise OrchestratorError("answered JSON of the wrong shape") from exc

    async def post_event(self, event: Event) -> int:
        """POST ``event``; its HTTP status (401/403 raise :class:`OrchestratorAuthError`)."""
        path = f"/events/{event.kind}"
        response = await self._send("POST", path, event.payload)
        if response.status_code == 200 and event.kind == "stream_started":
            self._learn_from_started(event, response)
        return response.status_code

    def _learn_from_started(self, event: Event, response: httpx.Response) -> None:
        """v1 names the stream by our label, v2 by the content id."""
        try:
            answer = response.json()
        except _MALFORMED:
            return  # delivered all the same: only the API stays unlearned
        named = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(named, str):
            return
        if named == event.stream_id:
            self._learn("v1", "stream_started named the stream by our stream id")
        elif named == event.payload.get("content_id"):
            self._learn("v2", "stream_started named the stream by its content id")

    async def engines(self) -> list[Engine]:
        """Healthy engines from ``GET /engines``."""

        def read(payload: Any) -> list[Engine]:
            engines = parse_engines(payload)
            self._learn(api_of_list(payload, "engines", self._under_api_v1), "GET /engines")
            return engines

        try:
            return await self._read("/engines", read)
        except OrchestratorAuthError:
            if not self._under_api_v1:  # v1 never asks a key for /engines
                self._learn("v2", "GET /engines asked for a key")
            raise

    async def running_streams(self) -> RunningStreams:
        """Streams still running, keyed the way this orchestrator names them."""

        def read(payload: Any) -> RunningStreams:
            self._learn(api_of_list(payload, "streams", self._under_api_v1), "GET /streams")
            return parse_running(payload, self.api or "v1")

        return await self._read("/streams?status=started", read)

    async def looping_streams(self) -> frozenset[str]:
        """Content the orchestrator lists as looping; empty (logged once) when it has no list."""
        try:
            looping = await self._read("/looping-streams", parse_looping)
        except OrchestratorError as exc:
            if exc.status != 404:
                raise
            if not self._no_loop_list_logged:
                self._no_loop_list_logged = True
                log.info(
                    "orchestrator %s has no loop list (GET /looping-streams: 404); "
                    "no content is refused as looping",
                    self.base_url,
                )
            return frozenset()
        self._no_loop_list_logged = False
        return looping

    def auth_failed(self, status: int) -> None:
        """Log a rejected key once per process, at error level; later ones at debug."""
        if self._auth_error_logged:
            log.debug("orchestrator still rejects our credentials (HTTP %d)", status)
            return
        self._auth_error_logged = True
        hint = "API_KEY is not set" if not self._headers else "API_KEY is wrong"
        log.error(
            "configuration error: the orchestrator rejected our request with HTTP %d (%s); "
            "events are dropped and its lists unread until API_KEY matches the orchestrator's",
            status,
            hint,
        )
