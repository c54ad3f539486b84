"""Hostile tool names, client names, URL hosts and arguments never reach a terminal raw.

A real held call is made through the real proxy by a client whose name and arguments (values,
keys, a URL host) carry an OSC 52 clipboard write, a line-erase plus a fake "✔ approved" line, a C1 CSI (\\x9b),
DEL, a bidi override and a zero-width space. Every printer that shows it — the --tty prompt and
`signoff watch` (each in a pseudo-terminal), `pending`, `audit` (tables, --json, export) — must
show those characters escaped; JSON output must stay valid and mean the same values. (The relay
refuses such tool names; a held row naming them is still printed escaped.)
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect

from signoff.approvals.broker import Broker
from signoff.approvals.store import open_store
from signoff.model import Decision, ToolCall, Verdict
from test_tty_pty import spawn_client, until_held

EVIL = "\x1b]52;c;ZXZpbA==\x07\x1b[2K\r✔ approved h-000000 (fs.read_file)\n\x9b31m\u202elive\u200b\x7f"
CALL = {
    "name": "get_current_time",
    "arguments": {"timezone": EVIL, "url": f"https://ex{EVIL}ample.com/", "k" + EVIL: ["x" + EVIL]},
}
ASK = Decision(Verdict.ASK, "held" + EVIL)
RAW = [b"\x1b", b"\x07", b"\xc2\x9b", "\u202e".encode(), "\u200b".encode(), b"\x7f"]


def assert_no_raw(output: bytes, where: str) -> None:
    found = [raw for raw in RAW if raw in output]
    assert not found, f"{where} printed raw {found!r}:\n{output[:3000]!r}"
    assert re.search(rb"\r(?!\n)", output) is None, f"{where} printed a bare carriage return"
    for line in re.split(rb"\r?\n", output):
        assert not line.lstrip().startswith("✔ approved h-000000".encode()), f"{where} painted a fake line"


def signoff(*args: str) -> bytes:
    proc = subprocess.run([sys.executable, "-m", "signoff", *args], capture_output=True, timeout=60, check=True)
    return proc.stdout + proc.stderr


def test_escape_hostile_names_and_arguments_on_every_terminal_printer(tmp_path: Path) -> None:
    child, go = spawn_client(tmp_path, CALL, client_name="agent" + EVIL)
    tty_screen = io.BytesIO()
    child.logfile_read = tty_screen
    held_id = until_held(child, go)
    # the relay refuses such tool names now; a row in the shared store may still carry them
    # (older proxies, other front ends): the printers must not trust the store either
    named = Broker(open_store()).issue_retry(ToolCall("srv" + EVIL, "tool" + EVIL, {"a": EVIL}, client=EVIL), ASK)

    watch = pexpect.spawn(sys.executable, ["-m", "signoff", "watch"], env=dict(os.environ), timeout=30, dimensions=(50, 200))
    watch_screen = io.BytesIO()
    watch.logfile_read = watch_screen
    watch.expect_exact(f"{held_id} › ".encode())
    watch.send(b"q")
    watch.expect(pexpect.EOF)
    assert_no_raw(watch_screen.getvalue(), "watch")
    assert b"\\x1b]52;c;ZXZpbA==\\x07" in watch_screen.getvalue()  # shown, escaped

    table = signoff("pending")
    assert_no_raw(table, "pending")
    assert held_id.encode() in table and b"\\u202e" in table
    as_json = signoff("pending", "--json")
    assert_no_raw(as_json, "pending --json")
    items = {item["id"]: item for item in json.loads(as_json)}
    item = items[held_id]
    assert (item["tool"], item["client"], item["arguments"]) == (CALL["name"], "agent" + EVIL, CALL["arguments"])
    assert (items[named]["server"], items[named]["tool"], items[named]["reason"]) == ("srv" + EVIL, "tool" + EVIL, ASK.reason)

    child.send(b"d\n")
    child.expect_exact(f"✘ denied {held_id}".encode())
    child.expect_exact(b"DONE")
    child.expect(pexpect.EOF)
    assert_no_raw(tty_screen.getvalue(), "the --tty prompt")
    assert b"\\x9b31m\\u202elive\\u200b\\x7f" in tty_screen.getvalue()

    audit = signoff("audit")
    assert_no_raw(audit, "audit")
    assert b"srv\\x1b]52;c;ZXZpbA==\\x07" in audit
    rows = signoff("audit", "--json")
    assert_no_raw(rows, "audit --json")
    assert "tool" + EVIL in {row["tool"] for row in json.loads(rows)}
    export = signoff("audit", "export", "--jsonl")
    assert_no_raw(export, "audit export")
    assert "tool" + EVIL in {json.loads(line)["tool"] for line in export.splitlines()}
