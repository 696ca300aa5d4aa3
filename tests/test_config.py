"""Configuration: defaults, environment, flags; a bad value names its variable."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from trioproxy.config import (
    SETTINGS,
    Config,
    ConfigError,
    Setting,
    add_arguments,
    load_config,
    readme_table,
    settings,
)

README = Path(__file__).parent.parent / "README.md"


def test_defaults_match_the_documented_ones() -> None:
    config = load_config({})
    assert config == Config()
    assert config.max_streams_per_engine == 3
    assert config.hls_window_size == 6
    assert config.hls_max_segments == 20
    assert config.hls_buffer_ready_timeout == 30.0
    assert config.bind == "127.0.0.1:8000"
    assert config.orchestrator_url is None
    assert config.engines == ()


def test_environment_then_flags() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    env = {
        "TRIOPROXY_ENGINES": "http://10.0.0.5:6878, http://engine:6878/",
        "ACEXY_MAX_STREAMS_PER_ENGINE": "5",
        "ORCHESTRATOR_URL": "http://orch:8000/",
        "API_KEY": "k",
        "HLS_WINDOW_SIZE": "4",
    }
    args = parser.parse_args(["--hls-window-size", "8", "--bind", "[::1]:9000"])
    config = load_config(env, args)
    assert config.engines == ("http://10.0.0.5:6878", "http://engine:6878")
    assert config.max_streams_per_engine == 5
    assert config.orchestrator_url == "http://orch:8000"
    assert config.api_key == "k"
    assert config.hls_window_size == 8
    assert config.bind == "[::1]:9000"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HLS_WINDOW_SIZE": "0"}, "HLS_WINDOW_SIZE"),
        ({"HLS_WINDOW_SIZE": "six"}, "HLS_WINDOW_SIZE"),
        ({"HLS_BUFFER_READY_TIMEOUT": "-1"}, "HLS_BUFFER_READY_TIMEOUT"),
        ({"HLS_BUFFER_READY_TIMEOUT": "nan"}, "HLS_BUFFER_READY_TIMEOUT"),
        ({"PROXY_GRACE_PERIOD": "inf"}, "PROXY_GRACE_PERIOD"),
        ({"TRIOPROXY_ENGINES": "engine:6878"}, "TRIOPROXY_ENGINES"),
        ({"TRIOPROXY_ENGINES": "http://host:99999"}, "TRIOPROXY_ENGINES"),
        ({"ORCHESTRATOR_URL": "ftp://x"}, "ORCHESTRATOR_URL"),
        ({"TRIOPROXY_BIND": "8000"}, "TRIOPROXY_BIND"),
        ({"TRIOPROXY_LOG_LEVEL": "loud"}, "TRIOPROXY_LOG_LEVEL"),
        ({"HLS_WINDOW_SIZE": "30"}, "HLS_WINDOW_SIZE"),
        ({"HLS_INITIAL_SEGMENTS": "25"}, "HLS_INITIAL_SEGMENTS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(env)


def test_every_setting_has_a_flag_and_a_field() -> None:
    fields = set(Config.__dataclass_fields__)
    assert {s.field for s in SETTINGS} == fields
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)


def test_readme_documents_every_setting() -> None:
    readme = README.read_text(encoding="utf-8")
    for setting in SETTINGS:
        assert f"| `{setting.env}` | `{setting.flag}` |" in readme, setting.env


def _readme_configuration_table() -> str:
    readme = README.read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return "".join(line + "\n" for line in section.splitlines() if line.startswith("|"))


def test_readme_table_is_the_declared_one() -> None:
    assert _readme_configuration_table() == readme_table(), (
        "README.md's configuration table differs from the settings declared in "
        "trioproxy/config/settings.py: replace it with the output of `python -m trioproxy.config`"
    )


def test_readme_table_has_one_row_per_setting() -> None:
    rows = readme_table().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{s.env}`" for s in SETTINGS]
    assert "| `HLS_BUFFER_READY_TIMEOUT` | `--hls-buffer-ready-timeout` | 30 |" in readme_table()
    assert "| `ORCHESTRATOR_URL` | `--orchestrator-url` | unset |" in readme_table()


@pytest.mark.parametrize("declared", SETTINGS, ids=lambda s: s.env)
def test_documented_default_reads_back_as_the_default(declared: Setting) -> None:
    text = "" if declared.default_text == "unset" else declared.default_text
    assert declared.parse(text) == declared.default
    assert load_config({declared.env: text}) == Config()


def test_a_field_not_declared_as_a_setting_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Partial:
        declared: int = settings.setting("TRIOPROXY_DECLARED", 1, int, "declared")
        plain: int = 2

    with pytest.raises(TypeError, match=r"Partial\.plain"):
        settings.settings_of(Partial)


def test_help_shows_variable_and_default() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "[env HLS_BUFFER_READY_TIMEOUT, default 30]" in text
    assert "[env ORCHESTRATOR_URL, default unset]" in text
    assert "`" not in text


def test_a_bad_flag_names_the_flag() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--hls-window-size", "0"])
    with pytest.raises(ConfigError, match="--hls-window-size='0'"):
        load_config({"HLS_WINDOW_SIZE": "4"}, args)


def test_the_api_key_stays_out_of_the_repr() -> None:
    assert "sekrit" not in repr(load_config({"API_KEY": "sekrit"}))


@pytest.mark.parametrize("key", ["sekrit-é", "sekrit key", "sekrit\n", "sekrit\x00"])
def test_an_api_key_no_http_header_can_carry_stops_start_up(key: str) -> None:
    with pytest.raises(ConfigError, match="API_KEY=<hidden>: must be printable ASCII") as caught:
        load_config({"API_KEY": key})
    assert "sekrit" not in str(caught.value)


def test_an_empty_api_key_is_no_key() -> None:
    assert load_config({"API_KEY": ""}).api_key is None
