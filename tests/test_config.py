"""Configuration: defaults, environment, flags; a bad value names its variable."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from trioproxy.config import SETTINGS, Config, ConfigError, add_arguments, load_config


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
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for setting in SETTINGS:
        assert f"| `{setting.env}` | `{setting.flag}` |" in readme, setting.env
