"""How a setting is declared: :func:`setting` makes a dataclass field that carries its
environment variable, parser and help; :func:`settings_of` reads them back as :class:`Setting`
rows for the loader, the ``--help`` text and the README's table."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import parsers as parse

__all__ = ["ConfigError", "Setting", "setting", "settings_of"]

T = TypeVar("T")

_KEY = "trioproxy.config"


class ConfigError(ValueError):
    """A setting has a value trioproxy cannot use."""


@dataclass(frozen=True)
class _Declared:
    env: str
    parse: Callable[[str], object]
    help: str


def setting(env: str, default: T, parse: Callable[[str], T], help: str, *, repr: bool = True) -> T:
    """A :class:`Config` field read from ``env`` (and its ``--flag``) with ``parse``.

    ``help`` is Markdown: it is the README's "Meaning" and, without backticks, the ``--help`` line.
    ``repr=False`` keeps a secret out of the config's repr.
    """
    declared = _Declared(env=env, parse=parse, help=help)
    return dataclasses.field(default=default, repr=repr, metadata={_KEY: declared})


@dataclass(frozen=True)
class Setting:
    """One setting as declared on :class:`Config`."""

    field: str
    env: str
    parse: Callable[[str], object]
    default: object
    help: str
    secret: bool = False
    """Declared with ``repr=False``: its value is never shown, not even in an error."""

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def default_text(self) -> str:
        """The default as a person would write it in the variable; ``unset`` for none."""
        if isinstance(self.default, bool):
            return "1" if self.default else "0"
        if self.default is None or self.default in ("", ()):
            return "unset"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        if self.parse is parse.byte_count and isinstance(self.default, int):
            return parse.format_bytes(self.default)
        return str(self.default)


def settings_of(cls: type[Any]) -> tuple[Setting, ...]:
    """The settings declared on dataclass ``cls``; each field must come from :func:`setting`."""
    found = []
    for field in dataclasses.fields(cls):
        declared = field.metadata.get(_KEY)
        if not isinstance(declared, _Declared):
            raise TypeError(f"{cls.__name__}.{field.name} is not declared with setting()")
        found.append(
            Setting(
                field.name,
                declared.env,
                declared.parse,
                field.default,
                declared.help,
                secret=not field.repr,
            )
        )
    return tuple(found)
