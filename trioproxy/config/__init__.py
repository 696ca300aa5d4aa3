"""Configuration: every setting read from the environment and overridden by a CLI flag.

- :mod:`.basic` and :mod:`.settings`: the settings, each declared once as a field of
  :class:`Config` (the basic ones first).
- :mod:`.cluster`: the cluster settings (the shared Redis) and the Redis URL forms.
- :mod:`.parsers`: the parsers that turn a variable's text into its typed value.
- :mod:`.sources`: parsing of the named-source lists.
- :mod:`.loading`: :func:`load_config` and :func:`add_arguments`, which read the declaration.
- :mod:`.table`: the README's configuration table, rendered from the declaration.

A bad value stops start-up with a :class:`ConfigError` whose message names the variable.
"""

from __future__ import annotations

from .loading import add_arguments, load_config
from .parsers import IPNetwork
from .settings import SETTINGS, Config, ConfigError, Setting
from .table import readme_table

__all__ = [
    "SETTINGS",
    "Config",
    "ConfigError",
    "IPNetwork",
    "Setting",
    "add_arguments",
    "load_config",
    "readme_table",
]
