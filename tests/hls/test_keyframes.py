"""Telling a random-access point from the codec's own units, however the PES is split."""

from __future__ import annotations

import pytest

from trioproxy.hls.keyframes import KeyframeScan

START = b"\x00\x00\x01"
H264_AUD = START + b"\x09\xf0"
H264_SPS = START + b"\x67\x42\xc0\x0d\xab\x40\x50"
H264_PPS = START + b"\x68\xce\x3c\x80"
H264_SEI = START + b"\x06\x05\x10" + bytes(16) + b"\x80"  # user data, not a recovery point
H264_RECOVERY = START + b"\x06\x06\x01\xc4\x80"
H264_IDR = START + b"\x65\x88\x84\x00\x33\xff"
H264_SLICE = START + b"\x41\x9a\x02\x03"
HEVC_AUD = START + b"\x46\x01\x10"
HEVC_VPS = START + b"\x40\x01\x0c\x01"
HEVC_CRA = START + b"\x2a\x01\xaf\x00"
HEVC_IDR = START + b"\x26\x01\xaf\x00"
HEVC_TRAIL = START + b"\x02\x01\xd0\x00"
MPEG2_SEQUENCE = b"\x00\x00\x01\xb3\x0a\x00\x78\x13"
MPEG2_PICTURE = b"\x00\x00\x01\x00\x00\x0f\xff\xf8"


def scan_split(codec: str, payload: bytes, at: int) -> bool | None:
    scan = KeyframeScan(codec)
    verdict = scan.feed(payload[:at])
    return verdict if verdict is not None else scan.feed(payload[at:])


@pytest.mark.parametrize(
    ("codec", "payload", "key"),
    [
        ("h264", H264_AUD + H264_SPS + H264_PPS + H264_SEI + H264_IDR, True),
        ("h264", H264_AUD + H264_SLICE, False),
        ("h264", H264_AUD + H264_SPS + H264_PPS + H264_RECOVERY + H264_SLICE, True),
        ("h264", H264_AUD + H264_RECOVERY + H264_SLICE, False),  # no SPS to start from
        ("hevc", HEVC_AUD + HEVC_VPS + HEVC_CRA, True),
        ("hevc", HEVC_AUD + HEVC_IDR, True),
        ("hevc", HEVC_AUD + HEVC_TRAIL, False),
        ("mpeg2", MPEG2_SEQUENCE + MPEG2_PICTURE, True),
        ("mpeg2", MPEG2_PICTURE, False),
    ],
)
def test_the_first_picture_decides_wherever_the_payload_is_split(
    codec: str, payload: bytes, key: bool
) -> None:
    for at in range(len(payload) + 1):
        assert scan_split(codec, payload, at) is key, at


def test_no_picture_yet_is_no_verdict_and_an_unknown_codec_is_never_a_keyframe() -> None:
    assert KeyframeScan("h264").feed(H264_AUD + H264_SPS) is None
    assert KeyframeScan("").feed(H264_IDR) is False
