"""Rates such as ``10/minute``: how many requests, in how long.

Plain Python, so that config/settings.py can refuse a malformed rate at start-up (naming
the variable) before Django is set up; core.ratelimit counts against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# DRF's own form (10/min, 5/hour, 100/day), with an optional multiple (3/15min).
_RATE = re.compile(
    r"(?P<count>\d{1,9})\s*/\s*(?P<multiple>\d{1,6})?\s*"
    r"(?P<unit>s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hour|hours|d|day|days)"
)


@dataclass(frozen=True)
class Rate:
    """At most ``count`` requests in any window of ``seconds``."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


def parse_rate(text: str) -> Rate:
    """``"10/minute"`` -> Rate(10, 60). Raises ValueError saying what is accepted."""
    match = _RATE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(
            f"{text!r} is not a rate: write <count>/<period>, such as 10/minute, "
            "5/hour or 3/15min (periods: second, minute, hour, day)"
        )
    count = int(match["count"])
    seconds = int(match["multiple"] or 1) * UNIT_SECONDS[match["unit"][0]]
    if count < 1 or seconds < 1:
        raise ValueError(f"{text!r} allows nothing: the count and the period must be at least 1")
    return Rate(count=count, seconds=seconds)
