"""An XMLTV guide filtered as it arrives: the wanted channels and their programmes, nothing else.

:class:`XmltvFilter` is fed the document's bytes in any chunking (:meth:`~XmltvFilter.feed`) and
keeps, of the children of ``<tv>``, each ``<channel id>`` and ``<programme channel>`` whose id is
one of the wanted tvg-ids, serialised again as text; everything else is dropped as soon as it is
read. What it holds is the kept elements (bounded by ``max_kept``) and the one element being
read, so a guide of any size is read in the same memory.

Ids match without regard to case, and a kept element is given the tvg-id as the channel list
writes it: apps match the guide to the playlist's ``tvg-id`` exactly.

A guide that declares entities (``<!ENTITY``: the "billion laughs" expansion, or an external
file) is refused: XMLTV needs none. A ``<!DOCTYPE tv SYSTEM "xmltv.dtd">`` line, as most guides
have, is fine: the DTD is never read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NoReturn
from xml.parsers import expat

__all__ = ["GuideError", "GuidePart", "Programme", "XmltvFilter", "parse_time"]


class GuideError(ValueError):
    """A guide that cannot be used: not XMLTV, not well-formed, cut short, over a bound."""


@dataclass(frozen=True, slots=True)
class Programme:
    """One ``<programme>`` of a wanted channel."""

    channel: str
    """The tvg-id, as the channel list writes it."""
    start: int | None
    """UTC epoch seconds; None when the guide's ``start`` cannot be read."""
    stop: int | None
    title: str
    description: str
    xml: str
    """The element, serialised again (the channel attribute set to :attr:`channel`)."""


@dataclass(slots=True)
class GuidePart:
    """What one guide holds of the wanted channels, in document order."""

    channels: dict[str, str] = field(default_factory=dict)
    """tvg-id → its ``<channel>`` element (the first one of the document)."""
    programmes: list[Programme] = field(default_factory=list)
    size: int = 0
    """Characters of XML kept."""


_TIME = re.compile(r"\s*(\d{8,14})(?:\s*([+-])(\d\d):?(\d\d)|\s*(?:Z|UTC|GMT))?\s*")


def parse_time(text: str | None) -> int | None:
    """An XMLTV time (``YYYYMMDDhhmmss ±hhmm``; seconds, minutes and hours may be left out, and
    the offset: UTC then) as UTC epoch seconds, or None."""
    found = _TIME.fullmatch(text or "")
    if found is None:
        return None
    digits, sign, hours, minutes = found.groups()
    digits = digits + "0" * (14 - len(digits))
    try:
        moment = datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    if sign:
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        moment -= offset if sign == "+" else -offset
    return int(moment.timestamp())


_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#9;",
    }
)
_ID_OF = {"channel": "id", "programme": "channel"}
"""The attribute that names the channel, of each element kept."""
_SHOWN = ("title", "desc")
"""Children of a programme whose first text :class:`Programme` carries."""


def _start_tag(tag: str, attributes: dict[str, str]) -> str:
    pairs = "".join(
        f' {name}="{value.translate(_ATTRIBUTE_ESCAPES)}"' for name, value in attributes.items()
    )
    return f"<{tag}{pairs}>"


class XmltvFilter:
    """Feed it an XMLTV document's bytes (:meth:`feed`), then :meth:`close` for what it kept.

    ``wanted``: the tvg-ids of the channel list. ``max_kept``: characters of XML kept at most;
    past it, :class:`GuideError`. Every error is a :class:`GuideError`, after which the filter
    takes nothing more.
    """

    def __init__(self, wanted: Iterable[str], *, max_kept: int) -> None:
        self._wanted = {tvg_id.casefold(): tvg_id for tvg_id in wanted if tvg_id}
        self._max_kept = max_kept
        self._part = GuidePart()
        self._depth = 0
        self._root_seen = False
        self._kept: list[str] | None = None
        """The element being kept, as text so far; None while none is."""
        self._kept_tag = ""
        self._kept_id = ""
        self._kept_attributes: dict[str, str] = {}
        self._shown: dict[str, str] = {}
        self._capture: list[str] | None = None
        self._capture_tag = ""
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.EntityDeclHandler = self._entity
        self._parser = parser

    def feed(self, data: bytes) -> None:
        """Read ``data``, the next bytes of the document."""
        self._parse(data, final=False)

    def close(self) -> GuidePart:
        """The end of the document: what was kept. A document cut short is a :class:`GuideError`."""
        self._parse(b"", final=True)
        if not self._root_seen or self._depth:
            raise GuideError("the guide ends before its </tv>")
        return self._part

    def _parse(self, data: bytes, *, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            message = expat.errors.messages.get(exc.code or 0, str(exc))
            raise GuideError(
                f"not well-formed XML at line {exc.lineno}, column {exc.offset}: {message}"
            ) from None

    # ---- expat's handlers -------------------------------------------------------------------

    def _entity(self, name: str, *_: object) -> NoReturn:
        raise GuideError(f"the guide declares an entity ({name}): refused, XMLTV needs none")

    def _start(self, tag: str, attributes: dict[str, str]) -> None:
        self._depth += 1
        if self._depth == 1:
            if tag != "tv" or self._root_seen:
                raise GuideError(f"not an XMLTV guide: its root is <{tag[:40]}>, not <tv>")
            self._root_seen = True
        elif self._depth == 2:
            self._start_kept(tag, attributes)
        elif self._kept is not None:
            self._keep(_start_tag(tag, attributes))
            if self._depth == 3 and tag in _SHOWN and tag not in self._shown:
                self._capture, self._capture_tag = [], tag

    def _start_kept(self, tag: str, attributes: dict[str, str]) -> None:
        name = _ID_OF.get(tag)
        tvg_id = self._wanted.get(attributes.get(name, "").casefold()) if name else None
        if name is None or tvg_id is None:
            return  # not kept: nothing of it is held, its children are only counted
        attributes[name] = tvg_id
        self._kept, self._kept_tag, self._kept_id = [], tag, tvg_id
        self._kept_attributes, self._shown = attributes, {}
        self._keep(_start_tag(tag, attributes))
        self._parser.CharacterDataHandler = self._text

    def _end(self, tag: str) -> None:
        self._depth -= 1
        if self._kept is None:
            return
        self._keep(f"</{tag}>")
        if self._capture is not None and self._depth == 2:
            self._shown[self._capture_tag] = "".join(self._capture).strip()
            self._capture = None
        if self._depth == 1:
            self._finish()

    def _text(self, data: str) -> None:
        self._keep(data.translate(_TEXT_ESCAPES))
        if self._capture is not None:
            self._capture.append(data)

    def _keep(self, text: str) -> None:
        assert self._kept is not None
        self._part.size += len(text)
        if self._part.size > self._max_kept:
            raise GuideError(
                f"the guide's programmes of the listed channels exceed {self._max_kept} characters"
            )
        self._kept.append(text)

    def _finish(self) -> None:
        assert self._kept is not None
        xml = "".join(self._kept)
        self._kept = None
        self._parser.CharacterDataHandler = None
        if self._kept_tag == "channel":
            self._part.channels.setdefault(self._kept_id, xml)
            return
        attributes = self._kept_attributes
        self._part.programmes.append(
            Programme(
                channel=self._kept_id,
                start=parse_time(attributes.get("start")),
                stop=parse_time(attributes.get("stop")),
                title=self._shown.get("title", ""),
                description=self._shown.get("desc", ""),
                xml=xml,
            )
        )
