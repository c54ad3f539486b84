"""`signoff watch` in a real pseudo-terminal: a key decides the call shown above the prompt.

The attack: a call is asked about, two more arrive while the person reads it; before the fix the
new blocks were printed under the prompt and a key decided the oldest call, whose block had
scrolled away. Now the asked call is shown again directly above the prompt, and the answer
names the id and tool it decided.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pexpect

from signoff.approvals.broker import Broker
from signoff.approvals.store import open_store
from signoff.model import Decision, ToolCall, Verdict

ASK = Decision(Verdict.ASK, "needs approval")
PROMPT = "{} › a approve · d deny · r deny with a reason · s skip · q quit › "


def spawn_watch() -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "signoff", "watch"], env=dict(os.environ), timeout=30, dimensions=(50, 200))
    child.expect_exact(b"waiting for held calls")
    return child


def last_block_above_prompt(screen: str, held_id: str) -> str:
    """The call block printed last before the final prompt for `held_id`."""
    before = screen[: screen.rindex(PROMPT.format(held_id))]
    return before[before.rindex("── ") :]


def test_watch_key_decides_the_call_shown_above_the_prompt(signoff_home: object) -> None:
    broker = Broker(open_store())
    child = spawn_watch()
    first = broker.issue_retry(ToolCall("fs", "write_file", {"path": "/srv/first"}), ASK)
    child.expect_exact(PROMPT.format(first).encode())
    screen = child.before.decode() + child.after.decode()
    # the person reads the first call; two more arrive meanwhile
    second = broker.issue_retry(ToolCall("fs", "delete_file", {"path": "/srv/second"}), ASK)
    third = broker.issue_retry(ToolCall("git", "push", {"force": True}), ASK)
    child.expect_exact(f"── {third}".encode())
    child.expect_exact(PROMPT.format(first).encode())
    screen += child.before.decode() + child.after.decode()
    block = last_block_above_prompt(screen, first)
    assert block.startswith(f"── {first}  fs.write_file") and "/srv/first" in block
    assert second not in block and third not in block
    child.send(b"a")
    child.expect_exact(f"✔ approved {first} (fs.write_file)".encode())
    assert [broker.get(i).status for i in (first, second, third)] == ["approved", "pending", "pending"]
    # the next question shows its own call right above it
    child.expect_exact(PROMPT.format(second).encode())
    block = last_block_above_prompt(child.before.decode() + child.after.decode(), second)
    assert block.startswith(f"── {second}  fs.delete_file") and "/srv/second" in block
    child.send(b"d")
    child.expect_exact(f"✘ denied {second} (fs.delete_file)".encode())
    assert [broker.get(i).status for i in (first, second, third)] == ["approved", "denied", "pending"]
    child.expect_exact(PROMPT.format(third).encode())
    child.send(b"q")
    child.expect(pexpect.EOF)
    assert broker.get(third).status == "pending"
    assert re.search(r"\x1b", screen) is None


def test_watch_a_double_press_decides_only_the_call_it_was_shown(signoff_home: object) -> None:
    broker = Broker(open_store())
    first = broker.issue_retry(ToolCall("fs", "write_file", {"path": "/srv/first"}), ASK)
    second = broker.issue_retry(ToolCall("fs", "delete_file", {"path": "/srv/second"}), ASK)
    child = spawn_watch()
    child.expect_exact(PROMPT.format(first).encode())
    child.send(b"aa")  # the second key was typed before the second call was on screen
    child.expect_exact(f"✔ approved {first} (fs.write_file)".encode())
    child.expect_exact(PROMPT.format(second).encode())
    assert broker.get(second).status == "pending"
    child.send(b"d")
    child.expect_exact(f"✘ denied {second} (fs.delete_file)".encode())
    child.send(b"q")
    child.expect(pexpect.EOF)


def test_watch_gives_the_terminal_back_when_terminated(signoff_home: object) -> None:
    shell = pexpect.spawn("sh", ["-c", f"stty -g; {sys.executable} -m signoff watch; stty -g"], env=dict(os.environ), timeout=30)
    shell.expect(rb"(\S+)\r\n")
    before = shell.match.group(1)
    shell.expect_exact(b"waiting for held calls")
    (watch_pid,) = (int(p) for p in Path(f"/proc/{shell.pid}/task/{shell.pid}/children").read_text().split())
    os.kill(watch_pid, signal.SIGTERM)  # while watch has the terminal in cbreak mode
    shell.expect(rb"([0-9a-f:]{20,})\r\n")
    assert shell.match.group(1) == before
    shell.expect(pexpect.EOF)


def test_watch_says_a_dead_proxys_call_cannot_be_approved_and_moves_on(signoff_home: object, tmp_path: Path) -> None:
    from held_calls import WAIT, RawClient, held_call

    broker = Broker(open_store())
    proxy = RawClient(tmp_path)
    try:
        proxy.call(1, "echo", {"text": "rm -rf /"})
        held = held_call(broker)
        child = spawn_watch()
        child.expect_exact(PROMPT.format(held.id).encode())
        later = broker.issue_retry(ToolCall("fs", "write_file", {"path": "/srv/later"}), ASK)
        child.expect_exact(f"── {later}".encode())
        os.kill(proxy.proc.pid, signal.SIGKILL)
        proxy.proc.wait(WAIT)
        child.expect_exact(f"{held.id} ({held.qualified}): proxy gone — cannot be approved".encode())
        child.expect_exact(PROMPT.format(later).encode())
        child.send(b"a")
        child.expect_exact(f"✔ approved {later} (fs.write_file)".encode())
        child.send(b"q")
        child.expect(pexpect.EOF)
    finally:
        proxy.close()
    assert broker.get(held.id).status == "abandoned"
