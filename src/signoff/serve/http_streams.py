"""Server-sent event streams with ids, so a client can resume a broken stream (`Last-Event-ID`).

Each stream (one per POST that is answered as SSE, plus a session's standalone GET stream)
numbers its events and keeps the last `KEEP` of them. A connection writes the events after the
last one its client saw; when the connection breaks, the events keep accumulating until a GET
with `Last-Event-ID: <stream>/<n>` picks the stream up again, or the resume window passes.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import anyio

KEEP = 1024
"""Events kept per stream for replay; a client further behind than this cannot resume."""
RETRY_MS = 1000
"""How long a client should wait before reconnecting (the SSE `retry` field)."""


class Lost(Exception):
    """The events after the client's Last-Event-ID are no longer kept."""


class EventStream:
    """One SSE stream of JSON-RPC frames: numbered, buffered, resumable."""

    def __init__(self, key: str, waiting: set[Any] | None = None, *, priming: bool = False):
        self.key = key
        self.waiting: set[Any] = waiting or set()
        """Request ids whose answers this stream still owes (a POST stream ends when empty)."""
        self.standalone = waiting is None
        self.priming = priming
        self.seq = 0
        self.events: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=KEEP)
        self.delivered = 0
        """The last event written to a connection (the client may not have read it)."""
        self.attached = False
        self.detached_at: float | None = None
        self._changed = anyio.Event()

    @property
    def done(self) -> bool:
        return not self.standalone and not self.waiting

    def push(self, frame: bytes, answers: Any = None) -> None:
        """Queue one frame (JSON, no newline); `answers` is the request id it answers, if any."""
        self.seq += 1
        self.events.append((self.seq, frame))
        if answers is not None:
            self.waiting.discard(answers)
        self._wake()

    def close(self) -> None:
        self.waiting.clear()
        self.standalone = False
        self._wake()

    def push_nothing(self) -> None:
        """Wake the writer without an event (its client went away)."""
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def changed(self) -> None:
        await self._changed.wait()

    def after(self, seen: int) -> list[tuple[int, bytes]]:
        """The events a client that saw event `seen` has not seen; Lost if they were dropped."""
        if self.events and self.events[0][0] > seen + 1:
            raise Lost(f"stream {self.key}: events after {seen} are no longer kept")
        return [(n, frame) for n, frame in self.events if n > seen]

    def event(self, n: int, frame: bytes) -> bytes:
        return b"id: %s/%d\nevent: message\ndata: %s\n\n" % (self.key.encode(), n, frame)

    def prime(self, seen: int) -> bytes:
        """The 2025-11-25 priming event: an id and empty data, so the client can resume at once."""
        return b"id: %s/%d\nretry: %d\ndata: \n\n" % (self.key.encode(), seen, RETRY_MS)

    def detach(self) -> None:
        self.attached = False
        self.detached_at = time.monotonic()


def parse_event_id(value: str) -> tuple[str, int] | None:
    key, slash, n = value.strip().rpartition("/")
    return (key, int(n)) if slash and key and n.isdigit() else None
