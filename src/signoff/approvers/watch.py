"""`signoff watch`: one console, in another terminal, for the held calls of every proxy.

The prompt is always about the call shown directly above it: each question starts by showing
its call in full; a call that arrives meanwhile gets a one-line notice and the call being asked
about is shown again under it, so a key can never decide a call that scrolled away. Every
answer names the id and tool it decided. Keys typed before a question is shown are dropped. A
call decided elsewhere meanwhile (CLI, web, another watch) leaves the prompt with who decided
it; a call whose proxy died or whose client stopped waiting gets one line saying it cannot be
approved (whether it was being asked about or queued), and the console moves on. Input and output are injectable streams, so tests drive it with a script.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from typing import IO

from signoff.approvals.broker import Broker
from signoff.approvals.store import GONE, HeldCall, gone_line
from signoff.approvers.console import KEYS_HELP, KeyReader, ago, prompt, render_held
from signoff.termsafe import clean


class Watch:
    """The console loop; `run()` returns at `q` or when the input ends."""

    def __init__(self, broker: Broker, keys: KeyReader, out: IO[str], *, by: str | None = None, poll_interval: float = 0.2):
        self.broker = broker
        self.keys = keys
        self.out = out
        self.by = by
        self.poll_interval = poll_interval
        self.shown: set[str] = set()
        self.skipped: list[str] = []
        self.settled: set[str] = set()
        self.asking: str | None = None
        self.went = False
        """A queued call went away (one line said so) since the prompt was last written."""

    def _queue(self) -> list[HeldCall]:
        """The held calls, oldest first, skipped ones last (sweeping calls whose proxy died)."""
        order = {held_id: i for i, held_id in enumerate(self.skipped)}
        queue = sorted(self.broker.pending(), key=lambda h: order.get(h.id, -1))
        self._went_away({h.id for h in queue})
        return queue

    def _went_away(self, waiting: set[str]) -> None:
        """One line for each queued call that left because nobody waits for it any more (the
        call being asked about is the prompt's to report)."""
        for held_id in sorted(self.shown - waiting - self.settled - {self.asking}):
            self.settled.add(held_id)
            held = self.broker.store.get_held(held_id)
            if held is not None and held.status in GONE:
                self.out.write(f"\n{clean(gone_line(held))}\n")
                self.went = True
        self.out.flush()

    def _announce(self, queue: list[HeldCall], current: HeldCall | None) -> bool:
        """One line per call not seen before (the current one is shown in full instead)."""
        new = [held for held in queue if held.id not in self.shown]
        for held in new:
            self.shown.add(held.id)
            if current is None or held.id != current.id:
                self.out.write(
                    f"\n── {held.id}  {clean(held.qualified)}"
                    + (f" ({clean(held.who)})" if held.who else "")
                    + "  arrived, queued "
                    f"({ago(held.deadline - held.created)} to decide; {len(queue)} waiting)\n"
                )
        return any(current is None or held.id != current.id for held in new)

    def _ask_again(self, current: HeldCall) -> None:
        """On idle: when something new arrived under the prompt, show the asked call again."""
        self.went = False
        if self._announce(self._queue(), current):
            self.out.write(f"\nstill asking about {current.id}:\n" + render_held(current) + f"{current.id} › {KEYS_HELP} › ")
            self.out.flush()
        elif self.went:
            self.out.write(f"{current.id} › {KEYS_HELP} › ")
            self.out.flush()

    def run(self) -> None:
        self.out.write(f"signoff watch: waiting for held calls ({KEYS_HELP}; Ctrl-C to leave)\n")
        self.out.flush()
        try:
            while True:
                queue = self._queue()
                if not queue:
                    if self.keys.get(self.poll_interval) == "q":
                        return
                    continue
                current = queue[0]
                self.asking = current.id
                self._announce(queue, current)
                self.keys.drain()  # keys typed before this call is on screen are not about it
                self.out.write("\n" + render_held(current))
                self.out.flush()
                answer = prompt(
                    self.broker,
                    current,
                    self.keys,
                    self.out,
                    channel="watch",
                    by=self.by,
                    poll_interval=self.poll_interval,
                    on_idle=functools.partial(self._ask_again, current),
                )
                self.asking = None
                self.settled.add(current.id)  # the prompt said what became of it
                if answer == "quit":
                    return
                if current.id in self.skipped:
                    self.skipped.remove(current.id)
                if answer == "skipped":
                    self.skipped.append(current.id)
                    self.settled.discard(current.id)
        except EOFError:
            self.out.write("\n")
            return


def main(broker: Broker | None = None, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> None:
    """Run the console on the terminal (or the given streams); the terminal's modes come back
    however it ends (q, end of input, Ctrl-C, SIGTERM/SIGHUP)."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, lambda num, _frame: sys.exit(128 + num))
    keys = KeyReader(stdin or sys.stdin)
    try:
        Watch(broker or Broker(), keys, stdout or sys.stdout).run()
    finally:
        keys.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
