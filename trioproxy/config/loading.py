"""Reading the settings: environment variables, then ``--flags``, into a :class:`Config`.

Both functions walk :data:`~trioproxy.config.settings.SETTINGS`; nothing here names a setting.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from .settings import SETTINGS, Config, ConfigError

__all__ = ["add_arguments", "load_config"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting; an absent flag leaves the environment's value."""
    for setting in SETTINGS:
        meaning = setting.help.replace("`", "")
        parser.add_argument(
            setting.flag,
            dest=setting.field,
            default=None,
            metavar=setting.env,
            help=f"{meaning} [env {setting.env}, default {setting.default_text}]",
        )


def load_config(
    environ: Mapping[str, str],
    args: argparse.Namespace | None = None,
    overrides: Sequence[tuple[str, str]] = (),
) -> Config:
    """Build a :class:`Config`: defaults < environment < CLI flags < ``overrides``.

    ``overrides`` are ``(attribute, text)`` pairs, parsed as their flag would be. A value that
    does not parse raises :class:`ConfigError` naming the variable or flag it came from.
    """
    values: dict[str, Any] = {}
    forced = dict(overrides)
    for setting in SETTINGS:
        source, text = setting.env, environ.get(setting.env)
        flag_value = getattr(args, setting.field, None) if args is not None else None
        if flag_value is not None:
            source, text = setting.flag, flag_value
        if setting.field in forced:
            source, text = setting.flag, forced[setting.field]
        if text is None:
            continue
        try:
            values[setting.field] = setting.parse(text)
        except ValueError as exc:
            shown = "<hidden>" if setting.secret else repr(text)
            raise ConfigError(f"{source}={shown}: {exc}") from None
    return Config(**values)
