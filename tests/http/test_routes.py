"""The table of routes: every path of the URL scheme served once, and its lean column saying
truly which paths the lean path answers before Quart."""

from __future__ import annotations

import httpx

from trioproxy.channels.registry import Registry
from trioproxy.http import urls
from trioproxy.http.routes import MEDIA, TS, route_table
from trioproxy.http.routes.context import Context
from trioproxy.testing.harness import default_config

from .test_urls import sample


async def test_every_path_has_one_route_and_the_lean_column_tells_the_truth() -> None:
    config = default_config()
    async with httpx.AsyncClient() as http:
        table = route_table(Context(Registry(config, http), config))
    assert sorted(route.path.rule for route in table) == sorted(p.rule for p in urls.PATHS)
    for route in table:
        path = sample(route.path)
        media = urls.match_media(path)
        ts = urls.match_ts(path, {"format": "ts", "id": "a" * 40}, "HLS")
        assert (media is not None) == (route.lean == MEDIA), route.path
        assert (ts is not None) == (route.lean == TS), route.path
