"""The M3U renderer and the public address, as plain functions: what IPTV apps read, and what
no channel name, logo or forwarded header can do to it."""

from __future__ import annotations

import ipaddress

import pytest

from trioproxy.config import IPNetwork
from trioproxy.config.channels import ChannelEntry
from trioproxy.errors import BadRequest
from trioproxy.http.forwarded import public_base
from trioproxy.http.m3u import render_m3u

from .iptv import read_m3u

ID = "0123456789abcdef0123456789abcdef01234567"


def url_of(channel: ChannelEntry) -> str:
    return f"http://proxy.lan/ace/manifest.m3u8?id={channel.key}"


def test_an_entry_per_channel_in_order() -> None:
    channels = [
        ChannelEntry("BBC One", "content_id", ID, "bbc1.uk", "https://l.example/b.png", "UK"),
        ChannelEntry("Plain", "content_id", "f" * 40),
    ]
    text = render_m3u(channels, url_of)
    assert text == (
        "#EXTM3U\n"
        '#EXTINF:-1 tvg-id="bbc1.uk" tvg-logo="https://l.example/b.png" group-title="UK",BBC One\n'
        f"http://proxy.lan/ace/manifest.m3u8?id={ID}\n"
        '#EXTINF:-1 tvg-id="" tvg-logo="" group-title="",Plain\n'
        f"http://proxy.lan/ace/manifest.m3u8?id={'f' * 40}\n"
    )
    listing = read_m3u(text)
    assert [e.name for e in listing.entries] == ["BBC One", "Plain"]
    assert listing.entries[0].attributes == {
        "tvg-id": "bbc1.uk",
        "tvg-logo": "https://l.example/b.png",
        "group-title": "UK",
    }


def test_the_epg_url_is_announced_on_the_header() -> None:
    text = render_m3u([], url_of, "https://epg.example/guide.xml.gz?a=1&b=2")
    assert text == (
        '#EXTM3U url-tvg="https://epg.example/guide.xml.gz?a=1&b=2" '
        'x-tvg-url="https://epg.example/guide.xml.gz?a=1&b=2"\n'
    )
    assert read_m3u(text).attributes["url-tvg"] == "https://epg.example/guide.xml.gz?a=1&b=2"


def test_commas_and_non_ascii_names_are_kept() -> None:
    channel = ChannelEntry("News, Weather · Ελληνικά", "content_id", ID, group="A, B")
    listing = read_m3u(render_m3u([channel], url_of))
    assert listing.entries[0].name == "News, Weather · Ελληνικά"
    assert listing.entries[0].attributes["group-title"] == "A, B"


@pytest.mark.parametrize(
    "hostile",
    [
        'Evil",tvg-logo="http://evil.example/x.png',
        "Evil\n#EXTINF:-1,Injected\nhttp://evil.example/stream",
        "Evil\r\nhttp://evil.example/stream",
        "Evil\u2028http://evil.example/\x85stream\x00",
        '" group-title="Injected',
        'Trailing, "quoted"',
    ],
)
def test_a_hostile_name_logo_or_group_cannot_add_a_line_or_an_attribute(hostile: str) -> None:
    channel = ChannelEntry(
        hostile, "content_id", ID, hostile, "https://l.example/" + hostile, hostile
    )
    text = render_m3u([channel, ChannelEntry("Next", "content_id", ID)], url_of)
    listing = read_m3u(text)
    assert len(text.splitlines()) == 5
    assert [e.url for e in listing.entries] == [url_of(channel)] * 2
    first = listing.entries[0]
    assert set(first.attributes) == {"tvg-id", "tvg-logo", "group-title"}
    assert '"' not in first.name
    assert first.attributes["tvg-logo"].startswith("https://l.example/")
    assert " " not in first.attributes["tvg-logo"]
    assert listing.entries[1].name == "Next"


TRUSTED: tuple[IPNetwork, ...] = (ipaddress.ip_network("10.0.0.0/8"),)
FORWARDED = {
    "x-forwarded-proto": "https",
    "x-forwarded-host": "tv.example.org",
    "x-forwarded-prefix": "/iptv/",
}


def test_the_host_the_client_used() -> None:
    assert (
        public_base("http", "proxy.lan:8000", "", peer="192.168.1.5", forwarded={}, trusted=())
        == "http://proxy.lan:8000"
    )
    assert (
        public_base("https", "[::1]:8443", "/mnt", peer="::1", forwarded={}, trusted=())
        == "https://[::1]:8443/mnt"
    )


def test_forwarded_headers_count_only_from_a_trusted_proxy() -> None:
    def base(peer: str, forwarded: dict[str, str], trusted: tuple[IPNetwork, ...] = TRUSTED) -> str:
        return public_base(
            "http", "proxy.lan:8000", "", peer=peer, forwarded=forwarded, trusted=trusted
        )

    assert base("192.168.1.5", FORWARDED) == "http://proxy.lan:8000"
    assert base("192.168.1.5", FORWARDED, ()) == "http://proxy.lan:8000"
    assert base("10.1.2.3", FORWARDED) == "https://tv.example.org/iptv"
    assert base("10.1.2.3:5555", FORWARDED) == "https://tv.example.org/iptv"
    # Of several values, the one the trusted proxy (the nearest) set.
    chained = {"x-forwarded-host": "forged.example, tv.example.org", "x-forwarded-proto": "ftp"}
    assert base("10.1.2.3", chained) == "http://tv.example.org"
    # Values that are no scheme, host or path are ignored.
    hostile = {
        "x-forwarded-host": 'evil.example"/x',
        "x-forwarded-prefix": "/a b",
        "x-forwarded-proto": "javascript",
    }
    assert base("10.1.2.3", hostile) == "http://proxy.lan:8000"


@pytest.mark.parametrize("host", [None, "", "evil.example/x", 'a"b', "user@evil.example"])
def test_a_host_header_that_is_no_host_is_refused(host: str | None) -> None:
    with pytest.raises(BadRequest, match="Host header"):
        public_base("http", host, "", peer="192.168.1.5", forwarded={}, trusted=())
