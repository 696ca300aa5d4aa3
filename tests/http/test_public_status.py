"""What ``/proxy/status`` shows a caller without the key: no source credentials or paths, no
engine session ids or URLs (in end and session reasons too), no viewer addresses; with the key,
everything."""

from __future__ import annotations

import ipaddress

import httpx
import trio
import trio.testing

from trioproxy.channels.public import public_status, url_secrets
from trioproxy.errors import public_url, redact
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.faults import FaultyEngine
from trioproxy.testing.harness import (
    CONTENT_A,
    ENGINE_URL,
    asgi_transport,
    default_config,
    harness,
    small_media,
)

from ..origin import Origin
from ..ts_client import TsClient

KEY = "status-key-0123456789abcdef"
ENGINE_B = "http://engine-b.test:6878"
SOURCE_PATH = "/live/acct4417/pw8812/1234.m3u8"
SOURCE_URL = f"http://alice:s3cretpw@origin.test{SOURCE_PATH}?username=qalice&password=qpw999"
SOURCE_SECRETS = [
    *("alice", "s3cretpw", "acct4417", "pw8812", "1234.m3u8", "qalice", "qpw999"),
    *("vtok777", "vtok888"),
]
HLS_VIEWER = "198.51.100.23"
TS_VIEWER = "203.0.113.77"


# A master playlist: the variant followed carries a token of its own.
MASTER = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nhi/vtok777/chunks.m3u8?token=vtok888\n"


async def test_status_without_the_key_names_hosts_only_and_no_viewer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = default_config(
        api_key=KEY,
        engines=(ENGINE_URL, ENGINE_B),
        sources=(("iptv", SOURCE_URL),),
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
        proxy_grace_period=3600.0,
    )
    engine_b = FaultyEngine(SimulatedEngine(small_media(), durations=[2.0], backlog=6.0))
    origin = Origin(playlists={SOURCE_PATH: MASTER})
    mounts: dict[str, httpx.AsyncBaseTransport] = {
        ENGINE_B: asgi_transport(engine_b),
        "http://origin.test": asgi_transport(origin),
    }
    async with harness(config, mounts=mounts) as h, trio.open_nursery() as nursery:
        # A TS player on an engine channel, an HLS player (behind a trusted proxy) on the source.
        ts_player = TsClient(h.app, "/ace/getstream", f"id={CONTENT_A}&format=ts")
        ts_player.peer = TS_VIEWER
        nursery.start_soon(ts_player.run)
        channel = await h.wait_channel()
        assert channel.engine.base_url == ENGINE_URL
        first_session = h.session_id()
        viewer = {"X-Forwarded-For": HLS_VIEWER}
        source = await h.client.get("/sources/iptv.m3u8", headers=viewer)
        assert source.status_code == 302
        played = await h.client.get(source.headers["location"], headers=viewer)
        assert played.status_code == 200
        # The first engine fails: the channel goes on on the second one, and its first session
        # is remembered with why it ended (a segment URL that carries the session id).
        h.engine.faults["*"] = "segment_404"
        with trio.fail_after(120):
            while channel.switches.total < 1:  # noqa: ASYNC110 (polls plain data)
                await trio.sleep(0.5)
        reason = channel.sessions[0].reason
        assert reason is not None
        assert f"/ace/c/{first_session}/" in reason

        keyless = await h.client.get("/proxy/status")
        keyed = await h.client.get("/proxy/status", headers={"Authorization": f"Bearer {KEY}"})
        ts_player.leave()

    assert keyless.status_code == keyed.status_code == 200
    secrets = [*SOURCE_SECRETS, first_session, "/ace/", TS_VIEWER, HLS_VIEWER]
    assert [secret for secret in secrets if secret in keyless.text] == []
    # What is left still says what happened, and where: hosts, never their paths.
    public = keyless.json()
    assert public["redacted"] is True
    (engine_channel,) = [c for c in public["channels"] if c["channel"] == CONTENT_A]
    first = engine_channel["sessions"][0]
    assert first["engine"] == ENGINE_URL
    assert "engine segments failing" in first["reason"]
    assert "engine.test:6878" in first["reason"]
    assert len(engine_channel["ts"]["players"]) == 1
    (source_channel,) = [c for c in public["channels"] if c["channel"] == "source/iptv"]
    assert source_channel["engine"]["url"] == "http://origin.test"
    assert source_channel["key"] == "http://origin.test"
    assert source_channel["clients"] == 1
    assert source_channel["upstream"]["variant"] == {"bandwidth": 800000}
    # With the key: everything.
    full = keyed.json()
    assert full["redacted"] is False
    shown = [SOURCE_URL, first_session, "/ace/c/", TS_VIEWER, "token=vtok888"]
    assert [secret for secret in shown if secret not in keyed.text] == []


def test_a_field_the_status_gains_stays_private_until_named() -> None:
    status = {
        "redacted": False,
        "channels": [{"channel": CONTENT_A, "state": "ready", "new_field": "secret-value"}],
        "closing": [],
        "new_section": {"anything": "secret-value"},
        "config": {"hls_window_size": 6, "new_setting": "secret-value"},
    }
    assert public_status(status, ()) == {
        "redacted": True,
        "channels": [{"channel": CONTENT_A, "state": "ready"}],
        "closing": [],
        "config": {"hls_window_size": 6},
    }


def test_public_url_is_scheme_host_and_port() -> None:
    assert public_url(SOURCE_URL) == "http://origin.test"
    assert public_url("https://u:p@[::1]:8443/a?b=c#d") == "https://[::1]:8443"
    assert public_url("hi/vtok777/chunks.m3u8?token=vtok888") == ""
    assert public_url("http://[::1") == ""


def test_a_source_urls_credentials_are_hidden_wherever_they_appear() -> None:
    secrets = url_secrets("http://bob:p%40ss%28@h/live/x.m3u8?username=bob2&password=a+b")
    assert set(secrets) == {"bob", "p%40ss%28", "p@ss(", "bob2", "a+b", "a b"}
    # Credentials echoed outside the URL are left out too.
    assert redact("login bob2 refused", *secrets) == "login <redacted> refused"


def test_a_password_of_any_characters_takes_its_url_with_it() -> None:
    for password in ("p(ss", "p'ss", 'p"ss', "p<ss>", "p)ss:"):
        text = f"engine http://bob:{password}@h.test/live/u1/p1/x.ts?password=q1: HTTP 404"
        assert redact(text) == "engine h.test: HTTP 404", password


def test_the_cluster_shows_counts_and_roles_only() -> None:
    instance = "http://10.1.2.3:8000"
    status = {
        "cluster": {
            "instance": {
                "id": "a1b2c3d4e5f6",
                "url": instance,
                "started_at": 1700000000.0,
                "store_reachable": True,
                "store_failures": 2,
                "takeovers": 1,
                "lease_seconds": 10.0,
            },
            "instances": [
                {
                    "id": "a1b2c3d4e5f6",
                    "url": instance,
                    "started_at": 1700000000.0,
                    "me": True,
                    "facts": {"channels": 1, "owned": 0, "relays": 1, "players": 2, "x": "tok"},
                }
            ],
            "channels": {"owner": 0, "relay": 1, "pending": 0},
        },
        "channels": [
            {
                "channel": CONTENT_A,
                "engine": {"url": instance, "container_id": None},
                "end_reason": f"relay {instance}/cluster/relay/content_id/x.ts?relay=id.tok: reset",
                "cluster": {
                    "role": "relay",
                    "owner": {"id": "a1b2c3d4e5f6", "url": instance},
                    "since_data_seconds": 0.5,
                    "relays": [{"instance": "f6e5d4c3b2a1", "lag_segments": 1, "lag_seconds": 2.0}],
                },
            }
        ],
    }
    hidden = (instance, "10.1.2.3:8000", "10.1.2.3", "tok")
    assert public_status(status, hidden) == {
        "redacted": True,
        "cluster": {
            "instance": {
                "store_reachable": True,
                "store_failures": 2,
                "takeovers": 1,
                "lease_seconds": 10.0,
            },
            "instances": [
                {
                    "me": True,
                    "started_at": 1700000000.0,
                    "facts": {"channels": 1, "owned": 0, "relays": 1, "players": 2},
                }
            ],
            "channels": {"owner": 0, "relay": 1, "pending": 0},
        },
        "channels": [
            {
                "channel": CONTENT_A,
                "engine": {"url": "<redacted>", "container_id": None},
                "end_reason": "relay <redacted>: reset",
                "cluster": {
                    "role": "relay",
                    "since_data_seconds": 0.5,
                    "relays": [{"lag_segments": 1, "lag_seconds": 2.0}],
                },
            }
        ],
    }
