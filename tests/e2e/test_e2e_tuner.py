"""Media servers and IPTV apps end to end: the real service on 127.0.0.1:0 in front of the
simulated engine serving real H.264 TS; ffmpeg plays a channel from an HDHomeRun lineup and
from an Xtream login, and a lineup URL's first packets are media, never null packets."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx
import trio

from trioproxy.config.channels import parse_channels_file
from trioproxy.hls.mpegts import PACKET_SIZE
from trioproxy.testing.engine import DEMO_CONTENT_ID, SimulatedEngine, demo_media

from ..media import service_before
from ..tools import require_tools

pytestmark = require_tools("ffmpeg", "ffprobe")

PASSWORD = "e2e-0123456789abcdef"
CHANNELS = f"Demo,{DEMO_CONTENT_ID},demo.tv,,Test\n"
NULL_PID = 0x1FFF


async def ffmpeg_plays(url: str, seconds: float) -> tuple[int, str]:
    """ffmpeg, as Jellyfin runs it on a tuner URL: read ``seconds`` of media, decode it."""
    done = await trio.run_process(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", str(seconds), "-f", "null", "-"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return done.returncode, done.stderr.decode(errors="replace")


async def first_packets(url: str, count: int) -> list[bytes]:
    """The first ``count`` TS packets of ``url`` as they arrive (HTTP/1.0: the body unframed)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    async with stream:
        target = f"{parts.path}?{parts.query}"
        await stream.send_all(f"GET {target} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < count * 188:
            received = await stream.receive_some(65536)
            assert received, data[:300]
            data += received
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"), head
    return [body[n : n + PACKET_SIZE] for n in range(0, count * PACKET_SIZE, PACKET_SIZE)]


def pid(packet: bytes) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


async def test_a_media_server_and_an_iptv_app_play_real_media(tmp_path: object) -> None:
    # A cold AceStream start: the engine has nothing for 20 s (the default TS URL sends null
    # packets meanwhile; a lineup URL sends nothing until media).
    engine = SimulatedEngine(demo_media(), durations=[2.0], prebuffer=20.0, seamless=True)
    async with service_before(
        engine,
        channels_file=parse_channels_file(CHANNELS),
        xtream_users=(("tv", PASSWORD),),
        proxy_grace_period=1.0,
    ) as url:
        async with httpx.AsyncClient(timeout=30) as client:
            discover = (await client.get(f"{url}/discover.json", params={"key": PASSWORD})).json()
            assert discover["BaseURL"] == url
            assert discover["TunerCount"] == 3
            lineup = (await client.get(discover["LineupURL"])).json()
            streams = (
                await client.get(
                    f"{url}/player_api.php",
                    params={"username": "tv", "password": PASSWORD, "action": "get_live_streams"},
                )
            ).json()
        (channel,) = lineup
        # What a media server's probe reads first, on the cold channel: media, no filler.
        began = trio.current_time()
        cold = await trio.run_process(
            [
                "ffprobe",
                "-v",
                "error",
                "-read_intervals",
                "%+#8",
                "-show_entries",
                "packet=codec_type",
                "-of",
                "json",
                channel["URL"],
            ],
            capture_stdout=True,
            check=False,
        )
        waited = trio.current_time() - began
        assert cold.returncode == 0
        first = [p["codec_type"] for p in json.loads(cold.stdout)["packets"]]
        assert len(first) >= 8
        assert set(first) <= {"video", "audio"}, first
        assert waited >= 20.0  # it really waited through the prebuffer
        packets = await first_packets(channel["URL"], 8)
        assert all(packet[0] == 0x47 for packet in packets)
        assert [pid(packet) for packet in packets if pid(packet) == NULL_PID] == []
        # The segment as the broadcast made it (SDT, PAT, PMT, ...): a probe sees the programs.
        assert 0 in [pid(packet) for packet in packets]
        probe = await trio.run_process(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,codec_name",
                "-of",
                "json",
                channel["URL"],
            ],
            capture_stdout=True,
            check=False,
        )
        assert probe.returncode == 0
        kinds = {s["codec_type"]: s["codec_name"] for s in json.loads(probe.stdout)["streams"]}
        assert kinds["video"] == "h264"
        code, errors = await ffmpeg_plays(channel["URL"], 4)
        assert code == 0, errors
        xtream = f"{url}/live/tv/{PASSWORD}/{streams[0]['stream_id']}.ts"
        code, errors = await ffmpeg_plays(xtream, 4)
        assert code == 0, errors
        print(f"lineup URL: first packet after {waited:.2f} s, PIDs {[pid(p) for p in packets]}")
        print(f"ffprobe: {kinds}")
    assert len(engine.sessions) == 1  # every player, one engine session
