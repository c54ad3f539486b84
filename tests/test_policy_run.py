"""A policy applied by the proxy: decisions reach the model, edits reload, broken policies stop it."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from conftest import connect, fake_server, through_signoff
from signoff.approvals.broker import Broker
from signoff.policy.engine import load_policy
from signoff.policy.reload import PolicyHolder

POLICY = """\
hitl_policies:
  - tool: "*.write_file"
    decision: deny
    reason: "no writes in this test"
  - action: file_delete
"""


async def wait_for_pending(timeout: float = 20):
    """The first held call in the shared queue (bounded wait, polling the store)."""
    broker = Broker()
    with anyio.fail_after(timeout):
        while not (pending := broker.pending()):
            await anyio.sleep(0.02)
    return pending[0]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_holder_reloads_an_edited_file_and_keeps_the_last_good_one(tmp_path: Path, caplog) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    clock = Clock()
    holder = PolicyHolder(str(path), load_policy, interval=1.0, clock=clock)
    first = holder.get()
    path.write_text(POLICY + "  - tool: 'git.*'\n")
    assert holder.get() is first  # not re-checked before the interval
    clock.now = 1.5
    second = holder.get()
    assert second is not first and len(second.rules) == 3 and holder.reloads == 1
    path.write_text(POLICY + "  - tool: 'git.*'\n    decision: sometimes\n")
    clock.now = 3.0
    with caplog.at_level(logging.ERROR, logger="signoff.policy"):
        assert holder.get() is second
    assert "policy.yaml:7: hitl_policies[2].decision" in (holder.last_error or "")
    assert "keeping the last good policy" in caplog.text


def test_presets_do_not_reload() -> None:
    holder = PolicyHolder("balanced", load_policy, interval=0)
    assert holder.path is None and holder.get() is holder.get()


@pytest.mark.anyio
@pytest.mark.e2e
async def test_policy_decisions_reach_the_model_and_edits_apply(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    target = tmp_path / "out.txt"
    env = {"SIGNOFF_POLICY_RELOAD_INTERVAL": "0"}
    async with connect(through_signoff(fake_server(), "--policy", str(path)), env=env) as client:
        with anyio.fail_after(30):
            allowed = await client.call_tool("echo", {"text": "fine"})
            assert not allowed.is_error
            denied = await client.call_tool("write_file", {"path": str(target), "content": "x"})
            assert denied.is_error and not target.exists()
            assert "blocked by the user's signoff policy: no writes in this test" in denied.content[0].text
            assert "ask the user" in denied.content[0].text
            target.write_text("keep")
            async with anyio.create_task_group() as tg:

                async def deny_when_held() -> None:
                    held_call = await wait_for_pending()
                    Broker().decide(held_call.id, False, reason="not today")

                tg.start_soon(deny_when_held)
                held = await client.call_tool("delete_file", {"path": str(target)})
            assert held.is_error and target.exists()
            assert "not approved by the user: not today" in held.content[0].text
            path.write_text("hitl_policies:\n  - tool: '*.echo'\n    decision: deny\n    reason: echo is off now\n")
            now_denied = await client.call_tool("echo", {"text": "x"})
            assert now_denied.is_error and "echo is off now" in now_denied.content[0].text
            path.write_text("hitl_policies: [\n")  # a broken edit keeps the last good policy
            still = await client.call_tool("echo", {"text": "x"})
            assert still.is_error and "echo is off now" in still.content[0].text


@pytest.mark.parametrize("transport", [[], ["--http", "127.0.0.1:0"]], ids=["stdio", "http"])
def test_a_broken_policy_stops_signoff_at_start(tmp_path: Path, transport: list[str]) -> None:
    """The policy loads while the server already answers; a broken one still stops signoff."""
    path = tmp_path / "policy.yaml"
    path.write_text("hitl_policies:\n  - tool: '*'\n    condition: 'a >'\n")
    done = subprocess.run(
        [sys.executable, "-m", "signoff", "run", *transport, "--policy", str(path), "--", *fake_server()],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert f"{path}:3: hitl_policies[0].condition: invalid CEL expression" in done.stderr
    assert done.stdout == ""


def test_policy_named_in_the_config_file_is_applied(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("hitl_policies:\n  - tool: '*'\n    condition: 'a >'\n")
    config = tmp_path / "signoff.yaml"
    config.write_text(
        f"servers:\n  fake:\n    command: {sys.executable}\n    args: ['-m', 'signoff.testing']\npolicy: policy.yaml\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "signoff", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "policy.yaml:3" in done.stderr


def test_no_policy_means_balanced_and_says_so_once(caplog) -> None:
    from signoff.model import ToolCall
    from signoff.runner import build_gate_factory

    caplog.set_level(logging.WARNING, logger="signoff.run")
    factory = build_gate_factory(None)
    gate = factory()
    assert [r.getMessage() for r in caplog.records if "preset" in r.getMessage()] == [
        "no --policy given: using the balanced preset (--policy none holds nothing)"
    ]
    assert gate.check(ToolCall("fs", "delete_file", {"path": "/w/a"})).hold
    assert gate.check(ToolCall("shell", "run_command", {"command": "rm -rf /"})).hold
    assert gate.check(ToolCall("time", "get_current_time", {})).allowed


def test_policy_none_is_the_explicit_pass_through(caplog) -> None:
    from signoff.model import ToolCall
    from signoff.runner import build_gate_factory

    caplog.set_level(logging.WARNING, logger="signoff.run")
    gate = build_gate_factory("none")()
    assert "--policy none: every call is allowed (and audited)" in caplog.text
    assert gate.check(ToolCall("fs", "delete_file", {"path": "/w/a"})).allowed


@pytest.mark.anyio
async def test_calls_made_while_the_policy_loads_wait_for_it_and_are_judged(tmp_path: Path) -> None:
    """Attack: the server answers while the policy loads in the background; a call sent in that
    window must neither run unjudged (the write) nor be dropped (the echo)."""
    import threading

    from harness import running, text_of
    from signoff.gate import GateLoader
    from signoff.relay.upstream import ServerSpec
    from signoff.runner import build_gate_factory

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    target = tmp_path / "written.txt"
    release = threading.Event()

    def slow_load():
        assert release.wait(30)
        return build_gate_factory(str(policy))

    loader = GateLoader(slow_load)
    spec = ServerSpec(name="fake", command=sys.executable, args=("-m", "signoff.testing"))
    async with running([spec], loader.factory()) as client, anyio.create_task_group() as tg:
        tg.start_soon(loader.run)
        await client.initialize()  # answered while the policy still loads
        await client.send(
            {
                "jsonrpc": "2.0",
                "id": "w",
                "method": "tools/call",
                "params": {"name": "write_file", "arguments": {"path": str(target), "content": "x"}},
            }
        )
        await client.send(
            {"jsonrpc": "2.0", "id": "e", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}
        )
        assert set(client.proxy.held) == {"w", "e"} and not loader.done.is_set()  # both wait, neither answered
        release.set()
        denied = await client.wait_for(lambda m: m.get("id") == "w")
        echoed = await client.wait_for(lambda m: m.get("id") == "e")
    assert denied["result"]["isError"] and "no writes in this test" in text_of(denied)
    assert not target.exists()
    assert text_of(echoed) == "hi"
    assert loader.factory().policy_hash()  # sessions made after the load get the real gate at once
