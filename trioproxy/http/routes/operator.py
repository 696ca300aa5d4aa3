"""The operator's routes: health, the status (JSON and page), metrics, stopping a channel."""

from __future__ import annotations

import json
from typing import Any

from quart import Response, request

from ...channels.status import registry_status
from ...errors import NotFound
from ..metrics import CONTENT_TYPE as METRICS_TYPE
from ..metrics import MetricsPage
from ..status_page import status_page
from .context import Context

__all__ = ["OperatorRoutes"]


class OperatorRoutes:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.metrics_page = MetricsPage(context.registry)

    async def healthz(self) -> dict[str, Any]:
        return {"status": "ok"}

    async def page(self) -> Response:
        return status_page()

    async def status(self) -> dict[str, Any]:
        context = self.context
        authorization = request.headers.get("Authorization")
        detail = context.access.shows_details(authorization, context.control_client())
        snapshot = registry_status(context.registry, detail=detail)
        if context.keys.required:
            # Media URLs rest on the incarnation being secret: only a keyed player's playlist
            # may reveal it.
            for channel in (*snapshot["channels"], *snapshot["closing"]):
                channel.pop("incarnation", None)
        return snapshot

    async def metrics(self) -> Response:
        return Response(
            self.metrics_page.render(),
            content_type=METRICS_TYPE,
            headers={"Cache-Control": "no-store"},
        )

    async def delete_channel(self, name: str) -> Response:
        # The key was checked by the app's guard, as for every state-changing request.
        if not self.context.registry.stop_channel(name, "stopped by request"):
            raise NotFound(f"no running channel {name}")
        return Response(
            json.dumps({"channel": name, "status": "stopping"}),
            status=202,
            content_type="application/json",
        )
