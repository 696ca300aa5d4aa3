"""The channel list (TRIOPROXY_CHANNELS_FILE): what a hand-written CSV file gives, and how a bad
line stops start-up with a message naming the setting and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from trioproxy.config import ConfigError, load_config
from trioproxy.config.channels import ChannelEntry, parse_channels_file

ID = "0123456789abcdef0123456789abcdef01234567"
HASH = "89abcdef0123456789abcdef0123456789abcdef"


def test_every_column_and_every_kind_of_stream() -> None:
    text = (
        "\ufeff# my channels\n"
        "name,stream,tvg-id,logo,group\n"
        "\n"
        f"BBC One,{ID.upper()},bbc1.uk,https://logos.example/bbc1.png,UK\n"
        f'"News, Weather", infohash:{HASH} ,,,"The ""Best"" group"\n'
        "  # an indented comment\n"
        "Local news,source:news\n"
        f"Copied,acestream://{ID}\n"
    )
    assert parse_channels_file(text) == (
        ChannelEntry(
            "BBC One", "content_id", ID, "bbc1.uk", "https://logos.example/bbc1.png", "UK", line=4
        ),
        ChannelEntry("News, Weather", "infohash", HASH, group='The "Best" group', line=5),
        ChannelEntry("Local news", "source", "news", line=7),
        ChannelEntry("Copied", "content_id", ID, line=8),
    )


def test_an_empty_list_is_a_list() -> None:
    assert parse_channels_file("# nothing yet\n") == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("BBC One", "expected name, stream, tvg-id, logo, group"),
        (f"a,{ID},b,,c,extra", "expected name, stream"),
        (f",{ID}", "the name is empty"),
        ("BBC,0123", "is not a content id"),
        (f"BBC,infohash:{ID[:-1]}", "is not a content id"),
        ("BBC,source:Not A Name", "is not a content id"),
        (f"BBC\tTwo,{ID}", "name contains a control character"),
        (f"BBC,{ID},,javascript:alert(1)", "is not an http(s) URL"),
        (f"BBC,{ID},,https://logo.example/a b.png", "is not an http(s) URL"),
        (f'"BBC,{ID}', "unexpected end of data"),
        (f"{'n' * 201},{ID}", "name is longer than 200"),
    ],
)
def test_a_bad_line_is_named(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^line 3: ") as caught:
        parse_channels_file(f"# header comment\nGood,{ID}\n{line}\n")
    assert message in str(caught.value)


def test_start_up_names_the_setting_and_the_line(tmp_path: Path) -> None:
    listing = tmp_path / "channels.csv"
    listing.write_text(f"Good,{ID}\nBad,nope\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^TRIOPROXY_CHANNELS_FILE='.*': line 2: stream 'nope'"):
        load_config({"TRIOPROXY_CHANNELS_FILE": str(listing)})
    with pytest.raises(ConfigError, match=r"^TRIOPROXY_CHANNELS_FILE='.*': cannot read it"):
        load_config({"TRIOPROXY_CHANNELS_FILE": str(tmp_path / "missing.csv")})
    listing.write_bytes(b"Caf\xe9," + ID.encode())
    with pytest.raises(ConfigError, match=r"^TRIOPROXY_CHANNELS_FILE='.*': it is not UTF-8"):
        load_config({"TRIOPROXY_CHANNELS_FILE": str(listing)})


def test_a_source_must_be_configured(tmp_path: Path) -> None:
    listing = tmp_path / "channels.csv"
    listing.write_text(f"Good,{ID}\nNews,source:news\n", encoding="utf-8")
    env = {"TRIOPROXY_CHANNELS_FILE": str(listing)}
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert str(caught.value) == (
        "TRIOPROXY_CHANNELS_FILE line 2: no source named 'news' in TRIOPROXY_SOURCES or "
        "TRIOPROXY_SOURCES_FILE"
    )
    config = load_config({**env, "TRIOPROXY_SOURCES": "news=http://origin.example/news.m3u8"})
    assert config.channels_file is not None
    assert [c.key for c in config.channels_file] == [ID, "news"]


def test_unset_means_no_list_and_stream_mode_is_checked() -> None:
    config = load_config({})
    assert config.channels_file is None
    assert config.epg_url is None
    assert config.stream_mode == "HLS"
    assert load_config({"STREAM_MODE": " ts "}).stream_mode == "TS"
    with pytest.raises(ConfigError, match=r"^STREAM_MODE='dash': must be HLS or TS$"):
        load_config({"STREAM_MODE": "dash"})
    with pytest.raises(ConfigError, match=r"^TRIOPROXY_EPG_URL="):
        load_config({"TRIOPROXY_EPG_URL": "file:///etc/passwd"})
