"""Approval on the controlling terminal (`signoff run --tty`): prompts on /dev/tty, never stdout.

A stdio proxy's stdout is the MCP channel, so the prompt opens `/dev/tty` itself. It runs on its
own daemon thread, fed by the broker's listeners with the calls this process holds; a call
decided elsewhere meanwhile is dropped from the prompt. Without a terminal it logs and does
nothing (the other channels still work).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import IO

from signoff.approvers import KeyReader, prompt, render_held
from signoff.broker import Broker
from signoff.errors import SignoffError
from signoff.store import HeldCall

log = logging.getLogger("signoff.tty")
TTY_PATH = "/dev/tty"


class TtyApprover:
    """Prompts for each offered held call, one at a time, on the given terminal streams."""

    def __init__(self, broker: Broker, tty_in: IO[str], tty_out: IO[str], *, by: str | None = None,
                 poll_interval: float = 0.1):
        self.broker = broker
        self.out = tty_out
        self.keys = KeyReader(tty_in)
        self.by = by
        self.poll_interval = poll_interval
        self._calls: queue.Queue[HeldCall | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def open(cls, broker: Broker, path: str = TTY_PATH, **options: object) -> TtyApprover | None:
        """An approver on the controlling terminal, or None (logged) if there is none."""
        try:
            tty_in = open(path, encoding="utf-8")  # noqa: SIM115 - lives as long as the approver
            tty_out = open(path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            log.warning("no terminal for --tty approvals (%s: %s); use `signoff watch` or `signoff approve`",
                        path, exc.strerror or exc)
            return None
        return cls(broker, tty_in, tty_out, **options)  # type: ignore[arg-type]

    def offer(self, held: HeldCall) -> None:
        """Queue a held call for the prompt (a broker listener: cheap, never blocks)."""
        self._calls.put(held)

    def attach(self) -> TtyApprover:
        """Listen to the broker's new holds and start the prompt thread."""
        self.broker.listeners.append(self.offer)
        return self.start()

    def start(self) -> TtyApprover:
        self._thread = threading.Thread(target=self._run, name="signoff-tty", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop prompting (a call being asked about stays held for the other channels)."""
        self._stop.set()
        self._calls.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        if self.offer in self.broker.listeners:
            self.broker.listeners.remove(self.offer)
        self.keys.close()

    def _run(self) -> None:
        while True:
            held = self._calls.get()
            if held is None:
                return
            try:
                if self.broker.get(held.id).status != "pending":
                    continue
                self.out.write("\nsignoff: a tool call needs your approval\n" + render_held(held))
                answer = prompt(self.broker, held, self.keys, self.out, channel="tty", by=self.by,
                                poll_interval=self.poll_interval, on_idle=self._stopping)
            except _Stopped:
                return
            except EOFError:
                log.warning("the terminal closed; tty approvals stop (other channels still work)")
                return
            except SignoffError as exc:  # a store error: the call stays held, other channels can decide
                log.error("tty approval of %s failed: %s", held.id, exc)
                continue
            if answer == "quit":
                log.info("tty approvals switched off from the terminal")
                return

    def _stopping(self) -> None:
        if self._stop.is_set():
            self.out.write("\n(signoff stopped asking here)\n")
            raise _Stopped


class _Stopped(Exception):
    """stop() was called while a prompt was waiting for a key."""
