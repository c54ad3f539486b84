"""Change tokens for the PostgreSQL store, fed by LISTEN/NOTIFY: no polling.

Every write announces what it changed with NOTIFY in its own transaction (payload: a held call's
id, `kill`, `new`…), delivered on commit to every listening process on every host. One thread
per process keeps one LISTEN connection and counts: a topic's token moves when a notification
for it arrives. Waiters (`wait`) sleep on an asyncio event that thread sets.

A NOTIFY sent while the connection is down is lost, so losing it and making it again each move
every token ("epoch"): each waiting hold then re-reads its row (and, if the server is down,
fails closed on that read).
"""

from __future__ import annotations

import asyncio
import logging
import threading

import anyio
import psycopg
from psycopg import sql

from signoff.approvals.pg_schema import first_line

log = logging.getLogger("signoff.store_pg")

RECONNECT_FIRST = 0.2
"""The LISTEN connection's first retry after it was lost (doubling up to 5 s)."""
TOPICS_KEPT = 50_000
"""Topics remembered; beyond this the table is cleared and every token moves once."""


class Changes:
    """One process's LISTEN connection to `channel`, and the change tokens it keeps."""

    def __init__(self, url: str, channel: str, where: str):
        self.url, self.channel, self.where = url, channel, where
        self._cond = threading.Condition()
        self._seq = 0
        self._epoch = 0
        self._last: dict[str, int] = {}
        self._waiters: dict[str | None, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._listening = threading.Event()
        self.reconnects = 0
        """How many times the LISTEN connection was made again after it was lost."""
        self.backend_pid: int | None = None
        """The server process of the LISTEN connection."""

    def start(self) -> None:
        with self._cond:
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._listen, name="signoff-listen", daemon=True)
                self._thread.start()

    def close(self) -> None:
        self._closed.set()  # the thread leaves within a second

    def _listen(self) -> None:
        delay = RECONNECT_FIRST
        first = True
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5, application_name="signoff-listen") as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.backend_pid = conn.info.backend_pid
                    if not first:
                        self.reconnects += 1
                    first, delay = False, RECONNECT_FIRST
                    self.moved(None)  # (re)connected: whatever was missed meanwhile, every waiter re-reads
                    self._listening.set()
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.moved(note.payload)
            except psycopg.Error as exc:
                if self._closed.is_set():
                    return
                if self._listening.is_set():
                    log.warning("lost the LISTEN connection to %s (%s); reconnecting", self.where, first_line(exc))
            self._listening.clear()
            self.moved(None)  # lost: every waiter re-reads now (and fails closed if the server is down)
            self._closed.wait(delay)
            delay = min(delay * 2, 5.0)

    def moved(self, topic: str | None) -> None:
        """A change to `topic` (None: to anything, after a reconnect): move tokens, wake waiters."""
        with self._cond:
            self._seq += 1
            if topic is None:
                self._epoch = self._seq
                woken = [w for ws in self._waiters.values() for w in ws]
            else:
                if len(self._last) >= TOPICS_KEPT:
                    self._last.clear()
                    self._epoch = self._seq
                self._last[topic] = self._seq
                woken = [*self._waiters.get(topic, ()), *self._waiters.get(None, ())]
        for loop, event in woken:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that event loop has closed
                pass

    def token(self, topic: str | None = None) -> int:
        """Moves on every change (with `topic`: to that topic only), and after a reconnect."""
        self.start()
        with self._cond:
            if topic is None:
                return self._seq
            return max(self._last.get(topic, 0), self._epoch)

    async def wait(self, token: int, timeout: float, topic: str | None = None) -> int:
        """The token for `topic` once it moved from `token`, or after `timeout` seconds."""
        current = self.token(topic)
        if current != token or timeout <= 0:
            return current
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._cond:
            self._waiters.setdefault(topic, set()).add(entry)
        try:
            if self.token(topic) == token:  # nothing moved between the check and registering
                with anyio.move_on_after(timeout):
                    await entry[1].wait()
        finally:
            with self._cond:
                waiting = self._waiters.get(topic)
                if waiting is not None:
                    waiting.discard(entry)
                    if not waiting:
                        del self._waiters[topic]
        return self.token(topic)

    def wait_listening(self, timeout: float) -> bool:
        """True once the LISTEN connection is up (tests, benchmarks)."""
        self.start()
        return self._listening.wait(timeout)
