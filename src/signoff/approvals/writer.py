"""Audit rows written after the fact, off the event loop: a call's outcome (`forwarded`,
`not_run`, `upstream_error`) is recorded once its answer is on its way to the client.

Measured on PostgreSQL (benchmarks/README.md, bench_team): writing that row on the proxy's event
loop waits for the audit chain's head lock behind every other host's writes (111 ms on average,
up to 3 s under a burst), and meanwhile the whole proxy stands still, so answers to calls a
human had already approved waited seconds. One thread per process writes these rows instead, in
the order they were given; nothing the proxy forwards waits for them (a row that must exist
BEFORE a call runs is never written here). `drain()` waits until every row is written: a clean
exit drains before giving up its lease (runner.py, Broker.release), and so does interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from signoff.errors import StoreError

log = logging.getLogger("signoff.approval")

DRAIN_SECONDS = 30.0
"""The longest an exit waits for rows still queued (each write fails closed within seconds)."""


class Writer:
    """One background thread running queued store writes in order; `drain()` waits for them."""

    def __init__(self, name: str = "signoff-audit-writer"):
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], str, threading.Event]] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def submit(self, write: Callable[..., Any], *args: Any, what: str) -> threading.Event:
        """Queue `write(*args)`; `what` names the row in the log line if it cannot be written.
        The event is set once it was written (or failed): whoever must answer only after the row
        exists (an upstream that failed) waits for it, off the event loop."""
        done = threading.Event()
        with self._idle:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
                atexit.register(self.drain)
        self._queue.put((write, args, what, done))
        return done

    def _run(self) -> None:
        while True:
            write, args, what, done = self._queue.get()
            try:
                write(*args)
            except StoreError as exc:  # said loudly, as a failed write on the loop always was
                log.error("AUDIT ROW NOT WRITTEN for %s: %s", what, exc)
            except Exception:  # noqa: BLE001 - any one row's failure must not stop the rows queued after it
                log.exception("AUDIT ROW NOT WRITTEN for %s", what)
            finally:
                done.set()
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    @property
    def pending(self) -> int:
        """Rows queued or being written."""
        with self._idle:
            return self._pending

    def drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait until every queued row is written (or failed); False if `timeout` passed first."""
        with self._idle:
            done = self._idle.wait_for(lambda: self._pending == 0, timeout)
        if not done:
            log.error("%d audit row(s) still unwritten after %.0f s at exit", self.pending, timeout)
        return done
