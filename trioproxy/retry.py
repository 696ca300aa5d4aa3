"""Backoff between retries: exponential, with jitter, bounded."""

from __future__ import annotations

import random

__all__ = ["backoff"]


def backoff(attempt: int, first: float = 0.5, cap: float = 8.0) -> float:
    """Seconds to wait before retry ``attempt`` (from 0): never zero, never above ``cap``."""
    return float(min(cap, first * 2**attempt) * random.uniform(0.5, 1.0))
