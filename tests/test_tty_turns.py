"""Proxies sharing one terminal ask one at a time, so an answer reaches the call shown above it.

An AI client starts one `signoff run --tty` per server, all on the same terminal. Two questions
printed at once would let `a⏎`, typed under the lower one, be read by the other proxy.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from signoff.approvals.broker import Broker
from signoff.approvals.store import open_store
from signoff.approvers.tty import TtyApprover
from signoff.model import Decision, ToolCall, Verdict
from test_watch import Screen

ASK = Decision(Verdict.ASK, "needs approval")
PROMPT = re.compile(r"(h-[0-9a-f]+) › type a")


def test_tty_two_proxies_on_one_terminal_take_turns(signoff_home: Path) -> None:
    master, slave = os.openpty()
    screen = Screen()

    def pump() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            screen.write(data.decode("utf-8", "replace"))

    threading.Thread(target=pump, daemon=True).start()
    broker = Broker(open_store())
    path = os.ttyname(slave)
    first, second = (TtyApprover(Broker(open_store()), path=path, poll_interval=0.02).start() for _ in range(2))
    try:
        one = broker.issue_retry(ToolCall("fs", "delete_file", {"path": "/one"}), ASK)
        two = broker.issue_retry(ToolCall("fs", "delete_file", {"path": "/two"}), ASK)
        first.offer(broker.get(one))
        second.offer(broker.get(two))
        screen.wait_for(" › type a")
        shown = PROMPT.search(screen.text).group(1)
        assert screen.text.count("needs your approval") == 1
        block = screen.text[screen.text.rindex("── ") :]
        assert block.startswith(f"── {shown}  fs.delete_file")
        mark = len(screen.text)
        os.write(master, b"a\n")
        screen.wait_for(f"✔ approved {shown} (fs.delete_file)", since=mark)
        other = two if shown == one else one
        assert (broker.get(shown).status, broker.get(other).status) == ("approved", "pending")
        screen.wait_for(f"{other} › type a", since=mark)  # then the other proxy's turn
        mark = len(screen.text)
        os.write(master, b"d\n")
        screen.wait_for(f"✘ denied {other} (fs.delete_file)", since=mark)
    finally:
        first.stop()
        second.stop()
        os.close(slave)
        os.close(master)
