"""This instance in its cluster: its heartbeat, the instances alive, the engines' loads.

A task of the registry (:meth:`Membership.run`) says every third of ``TRIOPROXY_LEASE_SECONDS``
that this instance is alive, with what it runs (its facts), and reads back the instances alive
and how many channels of the cluster each engine carries; requests read those copies without
waiting. The store unreachable changes nothing here but a warning (and ``reachable``): the
last copies stay.

Relays prove they are instances of the cluster with a **credential**: an instance's id and a
random token it publishes in its heartbeat (which only instances with access to the store
read); an owner serves its relay path only to a credential it finds among the instances alive.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

import trio

from ..cluster import Instance, Leases, StoreUnavailable

__all__ = ["Membership"]

log = logging.getLogger(__name__)

ASKED_KEPT = 1024
"""Unknown credentials remembered (each reads the instances at most once a second)."""
RELAY_TOKEN = "relay_token"
"""The fact of an instance's heartbeat that holds its relay token (never shown)."""


class Membership:
    """This instance (``me``) in the cluster whose store is ``leases``."""

    def __init__(self, leases: Leases, url: str, lease_seconds: float) -> None:
        self.leases = leases
        self.id = secrets.token_hex(6)
        self.url = url
        self.lease_seconds = lease_seconds
        self.started_at = time.time()
        self._token = secrets.token_urlsafe(18)
        self.credential = f"{self.id}.{self._token}"
        """What this instance's relays send to an owner."""
        self.instances: list[Instance] = []
        """The instances alive at the last heartbeat (this one included)."""
        self.engine_loads: dict[str, int] = {}
        self.urls_seen: set[str] = {url}
        """Every instance URL seen alive since we started (the keyless status hides them all)."""
        self.reachable = True
        """The store answered the last heartbeat."""
        self.failures = 0
        """Calls to the store that failed (it did not answer, or refused)."""
        self._asked: dict[str, float] = {}
        """When each unknown credential last made us read the instances."""

    @property
    def period(self) -> float:
        """Seconds between heartbeats and lease renewals: a third of a lease."""
        return self.lease_seconds / 3

    def me(self, facts: dict[str, Any] | None = None) -> Instance:
        return Instance(
            self.id,
            self.url,
            self.started_at,
            {**(facts or {}), RELAY_TOKEN: self._token},
        )

    def is_instance(self, credential: str) -> bool:
        """Whether ``credential`` is a relay credential of an instance alive."""
        instance_id, _, token = credential.partition(".")
        for instance in self.instances:
            if instance.id == instance_id:
                known = instance.facts.get(RELAY_TOKEN)
                return isinstance(known, str) and secrets.compare_digest(known, token)
        return False

    async def recognise(self, credential: str) -> None:
        """Read the instances alive again when ``credential`` is not among them: an instance
        that started since our last heartbeat relays at once. At most once a second."""
        now = trio.current_time()
        if self.is_instance(credential) or now < self._asked.get(credential, -math.inf) + 1.0:
            return
        if len(self._asked) >= ASKED_KEPT:
            self._asked.clear()
        self._asked[credential] = now
        try:
            self.instances = await self.leases.instances()
        except StoreUnavailable as error:
            self.store_failed("instances", error)
        self.urls_seen.update(i.url for i in self.instances)

    def store_failed(self, what: str, error: StoreUnavailable) -> None:
        """Count a failed call to the store; the first of an outage is logged."""
        self.failures += 1
        if self.reachable:
            log.warning("cluster store unreachable (%s): %s; serving on as we are", what, error)
        self.reachable = False

    async def run(
        self,
        facts: Callable[[], dict[str, Any]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Heartbeats until cancelled; the first one is tried before ``task_status.started``."""
        next_beat = trio.current_time()
        started = False
        while True:
            await self.beat(facts())
            if not started:
                started = True
                task_status.started()
            next_beat += self.period
            await trio.sleep_until(max(next_beat, trio.current_time()))

    async def beat(self, facts: dict[str, Any]) -> None:
        """One heartbeat: say we are alive; read the instances and the engines' loads back."""
        try:
            await self.leases.heartbeat(self.me(facts), self.lease_seconds)
            self.instances = await self.leases.instances()
            self.engine_loads = await self.leases.engine_loads()
        except StoreUnavailable as error:
            self.store_failed("heartbeat", error)
            return
        self.urls_seen.update(i.url for i in self.instances)
        if not self.reachable:
            log.warning("cluster store reachable again")
        self.reachable = True
