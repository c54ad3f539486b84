"""`signoff run --tty` in a real pseudo-terminal: the terminal is the person's, not signoff's.

A small interactive client (term_client.py) runs in a pty and starts the real proxy with pipes,
as AI clients do, so the proxy's /dev/tty is the pty. The attacks: keys typed into the client's
own prompt are swallowed by signoff; keys typed before a call is held decide it; one stray key
decides a call; the terminal is left in signoff's modes (after start-up, a call, or SIGTERM).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect

from conftest import through_signoff, time_server
from signoff.approvals.broker import Broker
from signoff.approvals.store import open_store

CLIENT = str(Path(__file__).with_name("term_client.py"))
HOLD_ALL = "hitl_policies:\n  - tool: '*'\n"
TIME_CALL = {"name": "get_current_time", "arguments": {"timezone": "UTC"}}
PROMPT = r"(h-[0-9a-f]+) › type a \(approve\), d \(deny\), r \(deny with a reason\) or s \(skip\), then Enter › ".encode()


def spawn_client(
    tmp_path: Path, call: dict, *, client_name: str = "pty-client", name: str = "time", env: dict[str, str] | None = None
) -> tuple[pexpect.spawn, Path]:
    policy = tmp_path / "hold-all.yaml"
    policy.write_text(HOLD_ALL)
    go = tmp_path / "go"
    proxy = through_signoff(time_server(), "--tty", "--policy", str(policy), "--name", name)
    child = pexpect.spawn(
        sys.executable,
        [CLIENT, json.dumps(call), str(go), client_name, "--", *proxy],
        env={**os.environ, **(env or {})},
        timeout=60,
        dimensions=(50, 220),
    )
    return child, go


def modes(child: pexpect.spawn, step: str) -> bytes:
    child.expect(rb"MODES " + step.encode() + rb" (\S+)\r\n")
    return child.match.group(1)


def until_held(child: pexpect.spawn, go: Path) -> str:
    """Type into the client's prompt, then type ahead while nothing is held; return the held id."""
    child.expect_exact(b"client> ")
    child.send(b"hello a\n")
    child.expect_exact(b"CLIENT GOT: hello a")  # the client's own prompt still gets its keys
    child.expect(rb"WAITING \S+\r\n")
    child.send(b"a\n")  # typed before any call is held ...
    child.expect(rb"a(\r\n|\^J)")  # ... echoed by the terminal: it waits in the input buffer
    go.touch()
    child.expect_exact(b"a tool call needs your approval")
    child.expect(PROMPT)
    return child.match.group(1).decode()


def test_tty_typeahead_and_single_keys_decide_nothing_and_modes_are_restored(tmp_path: Path) -> None:
    child, go = spawn_client(tmp_path, TIME_CALL)
    assert modes(child, "start") != (start := modes(child, "tui"))  # the client's own mode
    assert modes(child, "started") == start  # start-up leaves the terminal alone
    held_id = until_held(child, go)
    broker = Broker(open_store())
    assert broker.get(held_id).status == "pending"  # the buffered `a⏎` was discarded
    child.send(b"a")  # one key, no Enter: nothing is decided
    child.send(b"x\n")
    child.expect_exact(b"not understood: ax")
    assert broker.get(held_id).status == "pending"
    child.expect(PROMPT)
    child.send(b"a\n")
    child.expect_exact(b"DONE")  # the prompt's answer line and the client's output may come in either order
    after = child.before
    assert f"✔ approved {held_id} (time.get_current_time)".encode() in after
    result = json.JSONDecoder().raw_decode(re.search(rb"RESULT ([^\r\n]*)", after).group(1).decode())[0]
    assert "UTC" in result["result"]["content"][0]["text"] and not result["result"].get("isError")
    assert re.search(rb"MODES called (\S+)\r\n", after).group(1) == start
    child.expect(pexpect.EOF)
    held = broker.get(held_id)
    assert (held.status, held.channel) == ("approved", "tty")


def test_tty_modes_restored_when_the_proxy_is_terminated_while_asking(tmp_path: Path) -> None:
    child, go = spawn_client(tmp_path, TIME_CALL)
    modes(child, "start")
    start = modes(child, "tui")
    held_id = until_held(child, go)
    pid = Broker(open_store()).get(held_id).proxy_pid
    assert pid
    os.kill(pid, signal.SIGTERM)
    assert modes(child, "called") == start
    child.expect(pexpect.EOF)


def test_tty_without_a_controlling_terminal_says_so_once(tmp_path: Path) -> None:
    policy = tmp_path / "hold-all.yaml"
    policy.write_text(HOLD_ALL)
    proc = subprocess.run(
        through_signoff(time_server(), "--tty", "--policy", str(policy)),
        input=b"",
        capture_output=True,
        timeout=60,
        start_new_session=True,
    )  # as the Python SDK starts servers
    err = proc.stderr.decode()
    assert err.count("no terminal for --tty approvals") == 1, err
    assert "signoff watch" in err and "signoff ui" in err


def test_tty_a_proxy_in_the_background_never_touches_the_terminal(tmp_path: Path) -> None:
    """Changing a terminal's modes from its background stops the process (SIGTTOU): the client
    would hang. Such a proxy leaves the call to the other channels."""
    child, go = spawn_client(tmp_path, TIME_CALL, env={"TERM_CLIENT_BACKGROUND": "1"})
    child.logfile_read = screen = io.BytesIO()
    modes(child, "start")
    start = modes(child, "tui")
    child.expect_exact(b"client> ")
    child.send(b"hi\n")
    child.expect(rb"WAITING \S+\r\n")
    go.touch()
    broker = Broker(open_store())
    log = Path(f"{go}.log")
    deadline = time.monotonic() + 30
    while "this proxy is in its background" not in log.read_text():  # bounded poll of the proxy's log
        assert time.monotonic() < deadline, f"the proxy never said it waits for the foreground:\n{log.read_text()}"
        time.sleep(0.02)
    (held,) = broker.pending()
    broker.decide(held.id, True, channel="cli")  # another channel decides; the proxy was not stopped
    child.expect(rb"RESULT ([^\r\n]*)")
    assert "UTC" in child.match.group(1).decode()
    assert modes(child, "called") == start
    child.expect(pexpect.EOF)
    assert b"needs your approval" not in screen.getvalue()
