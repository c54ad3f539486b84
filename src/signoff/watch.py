"""`signoff watch`: one console, in another terminal, for the held calls of every proxy.

It shows each held call as it arrives (full arguments, long values folded) and asks about the
oldest one first; a call decided elsewhere meanwhile (CLI, web, another watch) is dropped from
the prompt with who decided it. Input and output are injectable streams, so tests drive it with
a script.
"""

from __future__ import annotations

import sys
from typing import IO

from signoff.approvers import KEYS_HELP, KeyReader, prompt, render_held
from signoff.broker import Broker
from signoff.store import HeldCall


class Watch:
    """The console loop; `run()` returns at `q` or when the input ends."""

    def __init__(self, broker: Broker, keys: KeyReader, out: IO[str], *, by: str | None = None,
                 poll_interval: float = 0.2):
        self.broker = broker
        self.keys = keys
        self.out = out
        self.by = by
        self.poll_interval = poll_interval
        self.shown: set[str] = set()
        self.skipped: list[str] = []

    def _show_new(self) -> list[HeldCall]:
        """Print calls not seen before; return the queue, oldest first, skipped ones last."""
        pending = self.broker.pending()
        for held in pending:
            if held.id not in self.shown:
                self.shown.add(held.id)
                self.out.write("\n" + render_held(held))
                self.out.flush()
        order = {held_id: i for i, held_id in enumerate(self.skipped)}
        return sorted(pending, key=lambda h: order.get(h.id, -1))

    def _on_idle(self, current: HeldCall) -> None:
        before = len(self.shown)
        self._show_new()
        if len(self.shown) != before:  # something new was printed under the prompt: ask again
            self.out.write(f"{current.id} › {KEYS_HELP} › ")
            self.out.flush()

    def run(self) -> None:
        self.out.write(f"signoff watch: waiting for held calls ({KEYS_HELP}; Ctrl-C to leave)\n")
        self.out.flush()
        try:
            while True:
                queue = self._show_new()
                if not queue:
                    if self.keys.get(self.poll_interval) == "q":
                        return
                    continue
                current = queue[0]
                answer = prompt(self.broker, current, self.keys, self.out, channel="watch", by=self.by,
                                poll_interval=self.poll_interval, on_idle=lambda: self._on_idle(current))
                if answer == "quit":
                    return
                if current.id in self.skipped:
                    self.skipped.remove(current.id)
                if answer == "skipped":
                    self.skipped.append(current.id)
        except EOFError:
            self.out.write("\n")
            return


def main(broker: Broker | None = None, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> None:
    """Run the console on the terminal (or the given streams)."""
    keys = KeyReader(stdin or sys.stdin)
    try:
        Watch(broker or Broker(), keys, stdout or sys.stdout).run()
    finally:
        keys.close()
