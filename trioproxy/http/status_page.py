"""The status page at ``/``: one HTML file shipped with the package (``status.html``), no
external assets. Its script reads ``proxy/status`` (a relative URL, so the page works under a
reverse proxy's path prefix) every few seconds and stops channels with ``DELETE
proxy/channels/<id>``.

The Content-Security-Policy allows the page's own inline script and style (by their hashes),
requests to this origin, and nothing else.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib.resources import files

from quart import Response

__all__ = ["status_page"]


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


@functools.cache
def _page() -> tuple[bytes, str]:
    html = files(__package__).joinpath("status.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    policy = (
        "default-src 'none'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors 'none'; script-src {' '.join(map(_hash, scripts))}; "
        f"style-src {' '.join(map(_hash, styles))}"
    )
    return html.encode(), policy


def status_page() -> Response:
    body, policy = _page()
    headers = {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return Response(body, content_type="text/html; charset=utf-8", headers=headers)
