"""Counting recent calls for `rate:` rules, from the audit trail every proxy writes.

The policy engine stays pure: it asks a counter "how many calls matching this test ran in the
last N seconds?" and the counter reads the shared store, so calls made through every signoff
process on the machine count. A call that ran is an `allowed` or `approved` audit row (observed
and remembered calls are `allowed` rows too). Rows are read once per window and kept for a
short time, so a burst of calls costs one query.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from signoff.approvals.audit import now_iso

RAN = ("allowed", "approved")
Match = Callable[[str, str, Mapping[str, Any]], bool]


class AuditCounter:
    """`count(window, match)`: calls that ran within `window` seconds and satisfy `match(server, tool, args)`."""

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time, cache_seconds: float = 0.2):
        self.store = store
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._rows: dict[float, tuple[float, list[tuple[str, str, str, Any]]]] = {}

    def _recent(self, window: float) -> list[tuple[str, str, str, Any]]:
        now = self.clock()
        cached = self._rows.get(window)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        since = now_iso(now - window)
        rows = []
        for decision in RAN:
            for row in self.store.audit_rows(decision=decision, since=since):
                rows.append((row["time"], row["server"], row["tool"], row["arguments"]))
        self._rows[window] = (now, rows)
        return rows

    def count(self, window: float, match: Match) -> int:
        total = 0
        for _time, server, tool, arguments in self._recent(window):
            args = arguments
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    args = {}
            if match(server, tool, args if isinstance(args, dict) else {}):
                total += 1
        return total


class MemoryCounter:
    """The same interface over an in-memory list, for tests and `policy explain --history`."""

    def __init__(self, calls: list[tuple[float, str, str, Mapping[str, Any]]] | None = None, *, clock: Callable[[], float] = time.time):
        self.calls = list(calls or [])
        self.clock = clock

    def add(self, server: str, tool: str, arguments: Mapping[str, Any] | None = None, at: float | None = None) -> None:
        self.calls.append((self.clock() if at is None else at, server, tool, dict(arguments or {})))

    def count(self, window: float, match: Match) -> int:
        start = self.clock() - window
        return sum(1 for at, server, tool, args in self.calls if at >= start and match(server, tool, args))
