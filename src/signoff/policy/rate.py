"""Counting recent calls for `rate:` rules, from the audit trail every proxy writes.

The policy engine stays pure: it asks a counter "how many calls matching this test ran in the
last N seconds?". The real counter, `approvals.audit.AuditCounter`, reads the shared store, so
calls made through every signoff process on the machine count; `MemoryCounter` here is the same
interface over a list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

Match = Callable[[str, str, Mapping[str, Any]], bool]


class MemoryCounter:
    """The same interface over an in-memory list, for tests and `policy explain --history`."""

    def __init__(
        self, calls: list[tuple[float, str, str, Mapping[str, Any]]] | None = None, *, clock: Callable[[], float] = time.time
    ):
        self.calls = list(calls or [])
        self.clock = clock

    def add(self, server: str, tool: str, arguments: Mapping[str, Any] | None = None, at: float | None = None) -> None:
        self.calls.append((self.clock() if at is None else at, server, tool, dict(arguments or {})))

    def count(self, window: float, match: Match) -> int:
        start = self.clock() - window
        return sum(1 for at, server, tool, args in self.calls if at >= start and match(server, tool, args))
