"""The last good guide of each source, kept on disk (``TRIOPROXY_STATE_DIR``), so that a restart
serves it at once.

One file per source, ``guide-<hash of its URL>.xml``: what the source's guide holds of the listed
channels, as XMLTV. It is written to a temporary file in the same directory and renamed over
the old one: a crash leaves the old file or the new one, never half of one. A file read back is
filtered like a fetched guide, so one that is not whole, or a channel list that changed since,
is handled as for a fetch (the file is ignored; channels no longer listed are left out).

The files are small (the listed channels only, bounded like a fetch's kept part) and are read
and written by the event loop in pieces: read at start-up, before anything is served; written
a piece at a time between other tasks' turns. Nothing here is fatal: a directory that cannot be
written means no cache, logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import trio

from ..guide import GuideError, GuidePart, XmltvFilter
from ..upstream.session import shown

__all__ = ["GuideCache", "state_directory"]

log = logging.getLogger(__name__)

_PIECE = 1 << 20
"""Bytes read or written at a time."""


def state_directory(setting: str | None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """``TRIOPROXY_STATE_DIR``, else ``$XDG_STATE_HOME/trioproxy``, else
    ``~/.local/state/trioproxy``; None when there is no home to put it in."""
    if setting:
        return Path(setting).expanduser()
    if environ.get("XDG_STATE_HOME"):
        return Path(environ["XDG_STATE_HOME"]) / "trioproxy"
    try:
        return Path.home() / ".local" / "state" / "trioproxy"
    except RuntimeError:
        return None


class GuideCache:
    """The cached guides in ``directory``; None: no cache (nothing is read or written)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._warned = False

    def path(self, url: str) -> Path | None:
        """The file of the source at ``url``."""
        if self.directory is None:
            return None
        return self.directory / f"guide-{hashlib.sha256(url.encode()).hexdigest()[:16]}.xml"

    def load(
        self, url: str, wanted: Iterable[str], max_kept: int
    ) -> tuple[GuidePart, float] | None:
        """The cached guide of ``url`` (its listed channels) and when it was written (UTC epoch
        seconds), or None when there is none that can be read whole. Blocks: for start-up."""
        path = self.path(url)
        if path is None:
            return None
        xmltv = XmltvFilter(wanted, max_kept=max_kept)
        try:
            with path.open("rb") as file:
                written = os.fstat(file.fileno()).st_mtime
                while piece := file.read(_PIECE):
                    xmltv.feed(piece)
            return xmltv.close(), written
        except FileNotFoundError:
            return None
        except (OSError, GuideError) as exc:
            log.warning("guide cache %s of %s: unusable, ignored: %s", path, shown(url), exc)
            return None

    async def save(self, url: str, document: bytes, fetched_at: float) -> bool:
        """Replace the cached guide of ``url`` with ``document``, fetched at ``fetched_at``
        (UTC epoch seconds: the file's time, read back by :meth:`load`); whether it was
        written."""
        path = self.path(url)
        if path is None:
            return False
        temporary: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(
                prefix=".guide-", suffix=".tmp", dir=path.parent
            )
            with os.fdopen(descriptor, "wb") as file:
                for start in range(0, len(document), _PIECE):
                    file.write(document[start : start + _PIECE])
                    await trio.lowlevel.checkpoint()
            os.utime(temporary, (fetched_at, fetched_at))
            os.replace(temporary, path)
            temporary = None
            self._warned = False
            return True
        except OSError as exc:
            if not self._warned:  # once, until a write succeeds again
                log.warning("guide cache: cannot write %s: %s", path, exc)
                self._warned = True
            return False
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
