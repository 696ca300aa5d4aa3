"""Xtream Codes logins (``TRIOPROXY_XTREAM_USERS``): what IPTV apps sign in with.

An app gives a user name and password on every request: in the query of ``player_api.php``,
``get.php`` and ``xmltv.php``, in the path of its stream URLs (``/live/<user>/<password>/<id>.ts``).
Both are compared in constant time, every login whatever matches, and never logged or echoed.
Each password is also a player key (:mod:`.keys`), so the stream URLs handed on carry it as
``?key=``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from ..config import Config

__all__ = ["XtreamLogins"]


@dataclass(frozen=True)
class XtreamLogins:
    """The configured logins; none: the Xtream API is off."""

    _logins: tuple[tuple[bytes, bytes], ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, config: Config) -> XtreamLogins:
        users = config.xtream_users
        return cls(tuple((name.encode(), password.encode()) for name, password in users))

    @property
    def enabled(self) -> bool:
        return bool(self._logins)

    def valid(self, user: str | None, password: str | None) -> bool:
        """Is ``user`` with ``password`` one of the logins?"""
        if user is None or password is None:
            return False
        name = user.encode("utf-8", "replace")
        secret = password.encode("utf-8", "replace")
        found = False
        for known_name, known_password in self._logins:
            same_name = hmac.compare_digest(name, known_name)
            same_password = hmac.compare_digest(secret, known_password)
            found |= same_name & same_password
        return found
