"""The cluster settings: Redis URL forms, this instance's URL, the lease against the deadline."""

from __future__ import annotations

import socket

import pytest

from trioproxy.config import ConfigError, load_config
from trioproxy.config.cluster import SentinelURL, sentinel_url

REDIS = {"TRIOPROXY_REDIS_URL": "redis://cache:6379/0"}


def test_without_redis_an_instance_is_alone() -> None:
    config = load_config({"TRIOPROXY_BIND": "0.0.0.0:8000"})
    assert config.redis_url is None
    assert config.lease_seconds == 10.0
    assert config.redis_timeout == 2.0
    assert config.redis_prefix == "trioproxy:"


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache:6379/0",
        "rediss://:secret@cache.example:6380",
        "unix:///run/redis/redis.sock?db=1",
        "redis+sentinel://s1:26379,s2,[::1]:26380/proxies",
    ],
)
def test_redis_url_forms(url: str) -> None:
    assert load_config({**REDIS, "TRIOPROXY_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://cache:6379", "redis://"),
        ("cache:6379", "redis://"),
        ("redis://cache:99999", "invalid port"),
        ("redis://", "must name a host"),
        ("unix://", "socket's path"),
        ("redis+sentinel://s1:26379", "service"),
        ("redis+sentinel://s1:abc/proxies", "invalid port"),
        ("redis+sentinel://s1,/proxies", "without a host"),
    ],
)
def test_bad_redis_urls_name_the_variable(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=f"TRIOPROXY_REDIS_URL.*{says}"):
        load_config({"TRIOPROXY_REDIS_URL": url})


def test_a_redis_url_with_a_password_is_never_shown() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({"TRIOPROXY_REDIS_URL": "http://:hunter2@cache"})
    assert "hunter2" not in str(raised.value)
    config = load_config({"TRIOPROXY_REDIS_URL": "redis://:hunter2@cache"})
    assert "hunter2" not in repr(config)


def test_a_sentinel_url_taken_apart() -> None:
    assert sentinel_url("redis+sentinel://u:p%40ss@s1:26380,[::1],s3/proxies/2") == SentinelURL(
        (("s1", 26380), ("::1", 26379), ("s3", 26379)), "proxies", "u", "p@ss", 2
    )
    assert sentinel_url("redis+sentinel://s1/proxies") == SentinelURL((("s1", 26379),), "proxies")


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ConfigError, match="TRIOPROXY_REDIS_PREFIX"):
        load_config({"TRIOPROXY_REDIS_PREFIX": "tp{x}:"})


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("10.0.0.5:8000", "http://10.0.0.5:8000"),
        ("proxy-1.lan:9000", "http://proxy-1.lan:9000"),
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("[fd00::5]:8000", "http://[fd00::5]:8000"),
        ("0.0.0.0:8000", "http://proxy-7:8000"),
        ("[::]:8080", "http://proxy-7:8080"),
    ],
)
def test_the_instance_url_derived_from_the_bind_address(
    bind: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "proxy-7")
    assert load_config({**REDIS, "TRIOPROXY_BIND": bind}).instance_address() == url


def test_the_instance_url_given_wins() -> None:
    env = {**REDIS, "TRIOPROXY_BIND": "0.0.0.0:8000", "TRIOPROXY_INSTANCE_URL": "http://p1:80/"}
    assert load_config(env).instance_address() == "http://p1:80"


def test_bound_everywhere_without_a_host_name_needs_the_instance_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    with pytest.raises(ConfigError, match="set TRIOPROXY_INSTANCE_URL"):
        load_config({**REDIS, "TRIOPROXY_BIND": "0.0.0.0:8000"})
    assert load_config({"TRIOPROXY_BIND": "0.0.0.0:8000"}).redis_url is None  # alone: fine


def test_a_lease_must_outlast_two_redis_deadlines() -> None:
    with pytest.raises(ConfigError, match="TRIOPROXY_LEASE_SECONDS"):
        load_config({**REDIS, "TRIOPROXY_LEASE_SECONDS": "3", "TRIOPROXY_REDIS_TIMEOUT": "2"})
    with pytest.raises(ConfigError, match="TRIOPROXY_LEASE_SECONDS"):
        load_config({**REDIS, "TRIOPROXY_LEASE_SECONDS": "0"})
    assert load_config({**REDIS, "TRIOPROXY_LEASE_SECONDS": "5"}).lease_seconds == 5.0
