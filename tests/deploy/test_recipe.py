"""The checked-in recipe itself: HAProxy accepts its config, the nginx template renders with
every placeholder filled, and the compose file runs what deploy/README.md says it runs."""

from __future__ import annotations

import os
import subprocess

import pytest

from trioproxy.testing.balancers import DEPLOY, render_template

from ..tools import require_tools

TEMPLATE = DEPLOY / "nginx" / "trioproxy.conf.template"


@require_tools("haproxy")
def test_haproxy_accepts_its_config_and_needs_no_balance_factor() -> None:
    env = {**os.environ, **{f"TRIOPROXY_SERVER_{i}": f"127.0.0.1:{i}" for i in (1, 2, 3)}}
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = (DEPLOY / "haproxy.cfg").read_text()
    lines = [line.split("#")[0].strip() for line in config.splitlines()]
    assert "balance hash var(txn.channel)" in lines
    assert "hash-type consistent" in lines
    assert not any(line.startswith("hash-balance-factor") for line in lines)


def test_the_nginx_template_renders_only_its_placeholders() -> None:
    values = {"NGINX_LISTEN": "8080", "NGINX_UPSTREAM": "haproxy:8080", "NGINX_CACHE_DIR": "/c"}
    site = render_template(TEMPLATE.read_text(), values)
    assert "${" not in site
    assert "proxy_cache_key $uri;" in site  # nginx's own variables stay
    with pytest.raises(ValueError, match="NGINX_UPSTREAM"):
        render_template(TEMPLATE.read_text(), {"NGINX_LISTEN": "1", "NGINX_CACHE_DIR": "/c"})


def test_the_compose_file_runs_redis_three_instances_haproxy_and_nginx() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    instances = [name for name in services if name.startswith("trioproxy")]
    assert sorted(instances) == ["trioproxy1", "trioproxy2", "trioproxy3"]
    for name in instances:
        env = services[name]["environment"]
        assert env["TRIOPROXY_REDIS_URL"] == "redis://redis:6379"
        assert env["TRIOPROXY_INSTANCE_URL"] == f"http://{name}:8000"
        assert env["TRIOPROXY_PLAYER_KEYS"].startswith("${TRIOPROXY_PLAYER_KEYS:?")
        assert env["API_KEY"].startswith("${API_KEY:?")
        assert services[name]["build"] == ".."
    addresses = {
        name: services[name]["networks"]["cluster"]["ipv4_address"] for name in ("haproxy", "nginx")
    }
    trusted = services["trioproxy1"]["environment"]["TRIOPROXY_TRUSTED_PROXIES"].split(",")
    assert sorted(trusted) == sorted(addresses.values())
    haproxy = services["haproxy"]
    assert haproxy["image"].startswith("docker.io/library/haproxy:2.6")
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in haproxy["volumes"]
    servers = {v for k, v in haproxy["environment"].items() if k.startswith("TRIOPROXY_SERVER_")}
    assert servers == {f"{name}:8000" for name in instances}
    assert "./nginx:/etc/nginx/templates:ro" in services["nginx"]["volumes"]
    assert services["nginx"]["environment"]["NGINX_UPSTREAM"] == "haproxy:8080"
    assert services["redis"]["image"].startswith("docker.io/library/redis:")
