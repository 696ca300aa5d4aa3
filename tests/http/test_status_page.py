"""The status page at ``/`` as the app serves it. The browser test, against a running proxy, is
``tests/e2e/test_status_page.py``."""

from __future__ import annotations

import base64
import hashlib
import re

from trioproxy.testing.harness import harness


async def test_the_page_is_one_self_contained_html_file() -> None:
    async with harness() as h:
        response = await h.client.get("/")
        head = await h.client.head("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert head.status_code == 200
    html = response.text
    assert '<table id="channels">' in html
    # No external assets, no absolute URLs: it works under any path prefix.
    assert not re.search(r"""(src|href)=""", html)
    assert not re.search(r"""["'`]/(proxy|ace|sources)""", html)
    assert '"proxy/status"' in html
    assert '"proxy/channels/"' in html
    # Only its own inline script and style may run.
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    (script,) = re.findall(r"<script>(.*?)</script>", html, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy
