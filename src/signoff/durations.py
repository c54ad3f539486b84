"""Durations as people write and read them: "30s", "5m", "1h30m".

One reader (`parse_duration`, for config and policy files and options) and one writer
(`format_duration`, for timeouts, rate windows and how long a call has been held), so every
place that shows a duration says it the same way.
"""

from __future__ import annotations

import math
import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
LONGEST = 366 * 86400.0
"""A year: a longer timeout, rate window or idle limit is a mistake (YAML's `.inf` and `.nan` are
numbers too; a held call must end in an answer, never wait forever or compare false to a clock)."""


def parse_duration(value: Any) -> float:
    """Seconds from 30, "30s", "5m", "1h" or "500ms"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, (int, float)):
        seconds = float(value) if abs(value) <= LONGEST else math.inf  # float(10**400) would overflow
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m or 1h")
        number, unit = float(match.group(1)), match.group(2) or "s"
        seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if not math.isfinite(seconds) or seconds > LONGEST:
        raise ValueError(f"{value!r} is not a duration signoff can wait for; write at most 366 days (e.g. 24h)")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    """300 → 5m, 90 → 1m30s, 3600 → 1h, 86400 → 1d, 2.5 → 2.5s: how people say a timeout."""
    if seconds < 60:
        return f"{round(max(seconds, 0), 3):g}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n)
