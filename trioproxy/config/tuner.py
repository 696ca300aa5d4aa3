"""The HDHomeRun DeviceID rule: 8 hex digits whose last one is a check digit. Pure functions.

libhdhomerun's ``hdhomerun_discover_validate_device_id`` XORs the odd nibbles (from the top)
through a lookup table and the even ones as they are; a valid ID XORs to 0. Plex checks it, so
a made-up ID must follow it: :func:`derived_device_id` draws seven digits from a hash and adds
the check digit.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["check_digit", "derived_device_id", "device_id", "is_valid_device_id"]

_LOOKUP = (0xA, 0x5, 0xF, 0x6, 0x7, 0xC, 0x1, 0xB, 0x9, 0x2, 0x8, 0xD, 0x4, 0x3, 0xE, 0x0)
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")


def check_digit(first_seven: int) -> int:
    """The last nibble that makes ``first_seven`` (a 28-bit number) a valid DeviceID."""
    nibbles = [(first_seven >> shift) & 0xF for shift in (24, 20, 16, 12, 8, 4, 0)]
    checksum = 0
    for index, nibble in enumerate(nibbles):
        checksum ^= _LOOKUP[nibble] if index % 2 == 0 else nibble
    return checksum


def is_valid_device_id(text: str) -> bool:
    if not _HEX8.fullmatch(text):
        return False
    value = int(text, 16)
    return check_digit(value >> 4) == value & 0xF


def derived_device_id(*stable: str) -> str:
    """A valid DeviceID drawn from ``stable`` (the same text, the same ID); its first digit is
    1, as on SiliconDust's own tuners."""
    digest = hashlib.sha256("\x00".join(stable).encode()).digest()
    first_seven = 0x1000000 | int.from_bytes(digest[:3], "big")
    return f"{first_seven:07X}{check_digit(first_seven):X}"


def device_id(text: str) -> str | None:
    """The parser of ``TRIOPROXY_TUNER_DEVICE_ID``: 8 hex digits with a valid check digit."""
    text = text.strip()
    if not text:
        return None
    if not is_valid_device_id(text):
        raise ValueError(
            "must be 8 hexadecimal digits whose last one is the HDHomeRun check digit "
            f"(e.g. {derived_device_id(text)}); leave it unset to derive one"
        )
    return text.upper()
