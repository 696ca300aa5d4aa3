"""The table of routes: every path of the URL scheme served once, and its lean column saying
truly which paths the lean path answers before Quart."""

from __future__ import annotations

import httpx
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.channels.registry import Registry
from trioproxy.http import urls
from trioproxy.http.inflight import ForwardedLimit
from trioproxy.http.lean import Head, LeanPath
from trioproxy.http.routes import HLS, HLS_OR_TS, MEDIA, TS, route_table
from trioproxy.http.routes.context import Context
from trioproxy.testing.harness import default_config

from .test_urls import sample


async def _no_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    raise AssertionError("the lean path only judges here")


async def test_every_path_has_one_route_and_the_lean_column_tells_the_truth() -> None:
    config = default_config()
    async with httpx.AsyncClient() as http:
        registry = Registry(config, http)
        table = route_table(Context(registry, config))
        lean = LeanPath(registry, config, ForwardedLimit(_no_app, 0, ()))
    assert sorted(route.path.rule for route in table) == sorted(p.rule for p in urls.PATHS)
    for route in table:
        path = sample(route.path)
        media = urls.match_media(path)
        ts = urls.match_ts(path, {"format": "ts", "id": "a" * 40}, "HLS")
        assert (media is not None) == (route.lean == MEDIA), route.path
        assert (ts is not None) == (route.lean in (TS, HLS_OR_TS)), route.path
        hls = Head("GET", path, b"id=" + b"a" * 40, [(b"host", b"proxy")], keep_alive=True)
        taken = lean.take(hls, ("127.0.0.1", 1)) if route.path.methods[0] == "GET" else None
        assert (taken is not None) == (route.lean in (MEDIA, HLS, HLS_OR_TS)), route.path
