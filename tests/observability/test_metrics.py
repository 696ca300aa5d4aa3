"""``/metrics``, scraped from the in-memory app and read with prometheus-client's own parser.

Counters and histograms are process-wide (they outlive one harness), so tests compare a scrape
after what they did with one before; what the registry holds (channels, players, refusals,
events, engine stats) belongs to the harness's registry and is checked as is.
"""

from __future__ import annotations

import re

import m3u8
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from trioproxy.hls.mpegts import NULL_PACKET
from trioproxy.observability.metrics import MAX_ENGINE_LABELS, SOURCE_LABEL, EngineLabels
from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    PROXY_URL,
    Harness,
    default_config,
    harness,
)

from ..ts_client import TsClient

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ENGINE = "engine.test:6878"
TS_QUERY = f"id={CONTENT_A}&format=ts"
LABEL_NAMES = {"state", "kind", "engine", "reason", "status", "le"}


async def scrape(h: Harness) -> Samples:
    response = await h.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after[key] - before.get(key, 0.0)


async def test_channels_by_state_and_players_by_kind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        for key in (CONTENT_A, CONTENT_A, CONTENT_B):  # three players, two channels
            assert (await h.open_playlist(key)).status_code == 200
        samples = await scrape(h)
        assert value(samples, "trioproxy_channels", state="ready") == 2
        for state in ("opening", "buffering", "stopping", "closed"):
            assert value(samples, "trioproxy_channels", state=state) == 0
        assert value(samples, "trioproxy_players", kind="hls") == 3
        assert value(samples, "trioproxy_players", kind="ts") == 0
        assert value(samples, "trioproxy_channels_started_total") == 2
        assert value(samples, "trioproxy_buffer_segments") == sum(
            len(h.channel(key).window) for key in (CONTENT_A, CONTENT_B)
        )
        # stream_started of each channel reached the orchestrator; nothing is queued.
        assert value(samples, "trioproxy_events_delivered_total") == 2
        assert value(samples, "trioproxy_events_pending") == 0
        assert value(samples, "trioproxy_events_dropped_total") == 0
        # Players go idle: the channels stop, and the gauges follow.
        await trio.sleep(h.config.hls_client_idle_timeout + h.config.proxy_grace_period + 1)
        samples = await scrape(h)
        assert value(samples, "trioproxy_channels", state="ready") == 0
        assert value(samples, "trioproxy_players", kind="hls") == 0
        assert value(samples, "trioproxy_events_delivered_total") == 4


async def test_segments_fetched_and_served(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        before = await scrape(h)
        playlist = await h.open_playlist()
        await trio.sleep(5.0)
        uris = [str(s.uri) for s in m3u8.loads(playlist.text).segments]
        for uri in uris:
            response = await h.client.get(str(playlist.url.join(uri)))
            assert response.status_code == 200
        assert (await h.client.head(str(playlist.url.join(uris[0])))).status_code == 200
        after = await scrape(h)
        (session,) = h.sim.sessions.values()
        fetched = len(session.segment_requests)
        assert fetched == h.channel().window.next_sequence
        assert delta(before, after, "trioproxy_segments_fetched_total") == fetched
        duration = "trioproxy_upstream_request_duration_seconds_count"
        assert delta(before, after, duration, engine=ENGINE, kind="segment") == fetched
        assert delta(before, after, duration, engine=ENGINE, kind="open") == 1
        assert delta(before, after, duration, engine=ENGINE, kind="playlist") >= 1
        received = delta(before, after, "trioproxy_upstream_received_bytes_total", engine=ENGINE)
        assert received > fetched * 1000  # segments of 1000 bytes, plus playlists and JSON
        # The HEAD sent no body and counts as nothing served.
        assert delta(before, after, "trioproxy_segments_served_total", kind="hls") == len(uris)
        sent = delta(before, after, "trioproxy_player_sent_bytes_total", kind="hls")
        assert sent == 1000 * len(uris)
        assert delta(before, after, "trioproxy_channel_ready_duration_seconds_count") == 1


async def test_failed_upstream_requests_are_counted(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        before = await scrape(h)
        h.engine_transport.refusing = True
        response = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        assert response.status_code == 302
        await trio.sleep(1.0)
        after = await scrape(h)
        failures = "trioproxy_upstream_request_failures_total"
        assert delta(before, after, failures, engine=ENGINE, kind="open") == 1
        assert delta(before, after, failures, engine=ENGINE, kind="segment") == 0


async def test_refusals_by_reason(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(max_channels=1, max_players_per_channel=1)) as h:
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        refused = await h.client.get("/ace/getstream", params={"id": CONTENT_B})
        assert refused.status_code == 503
        second_player = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        assert second_player.status_code == 503
        samples = await scrape(h)
        refusals = "trioproxy_admission_refusals_total"
        assert value(samples, refusals, reason="channels") == 1
        assert value(samples, refusals, reason="players") == 1
        assert value(samples, refusals, reason="memory") == 0
        assert value(samples, refusals, reason="failure_backoff") == 0


async def test_engine_stats_in_status_and_metrics(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(stat_interval=1.0)) as h:
        before = await scrape(h)
        assert (await h.open_playlist()).status_code == 200
        await trio.sleep(2.5)
        (channel,) = (await h.client.get("/proxy/status")).json()["channels"]
        stats = channel["engine_stats"]
        (session,) = h.sim.sessions.values()
        assert stats["status"] == "dl"
        assert stats["peers"] == 7
        assert stats["speed_down_kbps"] == 400
        assert stats["speed_up_kbps"] == 20
        assert stats["downloaded_bytes"] == 1000 * h.sim.produced(session, trio.current_time())
        assert stats["uploaded_bytes"] == 0
        assert set(stats["livepos"]) == {"live_first", "live_last", "pos", "first_ts", "last_ts"}
        assert 0 <= stats["age_seconds"] <= 1.0
        samples = await scrape(h)
        assert value(samples, "trioproxy_engine_sessions", engine=ENGINE, status="dl") == 1
        assert value(samples, "trioproxy_engine_peers", engine=ENGINE) == 7
        speed = "trioproxy_engine_download_speed_bytes_per_second"
        assert value(samples, speed, engine=ENGINE) == 400 * 1024
        duration = "trioproxy_upstream_request_duration_seconds_count"
        assert delta(before, samples, duration, engine=ENGINE, kind="stat") == 2


async def test_label_sets_are_bounded(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(stat_interval=1.0)) as h:
        for key in (CONTENT_A, CONTENT_B):
            assert (await h.open_playlist(key)).status_code == 200
        await trio.sleep(2.0)
        samples = await scrape(h)
    names = {name for name, _ in samples}
    engines: set[str] = set()
    assert "trioproxy_engine_peers" in {name for name, labels in samples if labels}
    assert {"trioproxy_players", "trioproxy_channels"} <= names
    for name, labels in samples:
        for label, label_value in labels:
            if not name.startswith("trioproxy_"):
                continue
            assert label in LABEL_NAMES, (name, label)
            assert CONTENT_A not in label_value
            assert CONTENT_B not in label_value
            if label == "engine":
                engines.add(label_value)
    # Counters outlive a harness: other tests' engines may show too, never more than the cap.
    assert ENGINE in engines
    assert len(engines - {"other", SOURCE_LABEL}) <= MAX_ENGINE_LABELS
    for engine in engines - {"other", SOURCE_LABEL}:
        assert re.fullmatch(r"[a-z0-9.-]+:[0-9]+|\[[0-9a-f:]+\]:[0-9]+", engine), engine


def test_engine_labels_stop_at_their_limit() -> None:
    labels = EngineLabels(limit=2)
    assert labels("10.0.0.1", 6878) == "10.0.0.1:6878"
    assert labels("::1", 6878) == "[::1]:6878"
    assert labels("10.0.0.3", 6878) == "other"
    assert labels("10.0.0.1", 6878) == "10.0.0.1:6878"
    assert labels("10.0.0.3", 6878) == "other"


async def test_metrics_page_needs_no_key_and_names_no_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(api_key="secret")) as h:
        assert (await h.open_playlist()).status_code == 200
        response = await h.client.get(f"{PROXY_URL}/metrics")
        assert response.status_code == 200
        assert CONTENT_A not in response.text
        assert "# TYPE trioproxy_segments_fetched_total counter" in response.text
        assert "# TYPE trioproxy_upstream_request_duration_seconds histogram" in response.text


async def test_mpegts_players_and_what_they_are_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        before = await scrape(h)
        player = TsClient(h.app, "/ace/getstream", TS_QUERY)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(player.run)
            await trio.sleep(7.0)  # the newest segment at once, then one every 2 s
            samples = await scrape(h)
            assert value(samples, "trioproxy_players", kind="ts") == 1
            segments = [data for _, data in player.chunks if data != NULL_PACKET]
            assert segments
            sent = delta(before, samples, "trioproxy_segments_served_total", kind="ts")
            assert sent == len(segments)
            sent_bytes = delta(before, samples, "trioproxy_player_sent_bytes_total", kind="ts")
            assert sent_bytes == len(player.body)
            player.leave()
        await trio.testing.wait_all_tasks_blocked()
        assert value(await scrape(h), "trioproxy_players", kind="ts") == 0
