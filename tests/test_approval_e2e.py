"""Held calls end to end: real upstreams, a real SDK client, decisions from another party."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import mcp_types as types
import pytest

from conftest import connect, fake_server, npm_server, through_signoff
from signoff.approvals.audit import AuditLog
from signoff.approvals.broker import Broker
from signoff.approvals.store import open_store

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FS_POLICY = """\
hitl_policies:
  - tool: "filesystem.write_file"
    reason: "writing files needs approval"
  - tool: "filesystem.create_directory"
    timeout: 1s
"""


async def next_pending(seen: set[str] | None = None, timeout: float = 30):
    """The next held call in the shared queue not in `seen` (bounded wait on the store)."""
    broker = Broker()
    seen = seen or set()
    with anyio.fail_after(timeout):
        while True:
            fresh = [h for h in broker.pending() if h.id not in seen]
            if fresh:
                return fresh[0]
            await anyio.sleep(0.02)


def policy_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


async def call_while(client, tool: str, args: dict, decide) -> types.CallToolResult:
    """Make a call that will be held, and run `decide(held)` once it shows up in the queue."""
    result: list[types.CallToolResult] = []
    async with anyio.create_task_group() as tg:

        async def make_call() -> None:
            result.append(await client.call_tool(tool, args))

        tg.start_soon(make_call)
        held = await next_pending()
        await decide(held)
    return result[0]


async def test_filesystem_write_only_after_approval(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    target = work / "notes.txt"
    command = through_signoff(
        npm_server("server-filesystem", str(work)), "--name", "filesystem", "--policy", policy_file(tmp_path, FS_POLICY)
    )
    async with connect(command) as client:
        with anyio.fail_after(60):
            listing = await client.call_tool("list_directory", {"path": str(work)})
            assert not listing.is_error  # reads pass

            async def approve(held) -> None:
                assert held.qualified == "filesystem.write_file"
                assert held.arguments == {"path": str(target), "content": "hello"}
                assert held.reason == "writing files needs approval"
                assert not target.exists()  # nothing happens before the decision
                Broker().decide(held.id, True, reason="looks fine")

            result = await call_while(client, "write_file", {"path": str(target), "content": "hello"}, approve)
            assert not result.is_error, result.content
            assert target.read_text() == "hello"

            async def deny(held) -> None:
                Broker().decide(held.id, False, reason="use notes2.txt instead")

            denied = await call_while(client, "write_file", {"path": str(target), "content": "bye"}, deny)
            assert denied.is_error and target.read_text() == "hello"
            text = denied.content[0].text
            assert "not approved by the user: use notes2.txt instead" in text and "ask the user" in text

            timed_out = await client.call_tool("create_directory", {"path": str(work / "d")})
            assert timed_out.is_error and "no decision within 1s" in timed_out.content[0].text
            assert not (work / "d").exists()

    rows = AuditLog(open_store()).query()
    decisions = [(r["tool"], r["decision"]) for r in rows]
    assert ("list_directory", "allowed") in decisions
    assert ("write_file", "held") in decisions and ("write_file", "approved") in decisions
    assert ("write_file", "denied") in decisions and ("create_directory", "timeout") in decisions
    count, problem = AuditLog(open_store()).verify()
    assert problem is None and count == len(rows)


async def test_edited_arguments_are_what_runs(tmp_path: Path, store_url: str | None) -> None:
    target = tmp_path / "edited.txt"
    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.write_file'\n")
    async with connect(through_signoff(fake_server(), "--policy", policy)) as client:

        async def approve_edited(held) -> None:
            Broker().decide(held.id, True, arguments={"path": str(target), "content": "edited by a human"})

        result = await call_while(client, "write_file", {"path": str(target), "content": "original"}, approve_edited)
        assert not result.is_error
        assert target.read_text() == "edited by a human"


async def test_kill_switch_stops_allowed_and_held_calls(tmp_path: Path, store_url: str | None) -> None:
    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.write_file'\n")
    async with connect(through_signoff(fake_server(), "--policy", policy)) as client:
        assert not (await client.call_tool("echo", {"text": "before"})).is_error

        async def kill(held) -> None:
            Broker().kill("incident in progress")

        held = await call_while(client, "write_file", {"path": str(tmp_path / "x"), "content": "x"}, kill)
        assert held.is_error and "kill switch" in held.content[0].text
        with anyio.fail_after(5):  # takes effect within 250 ms: the next call is refused
            while not (refused := await client.call_tool("echo", {"text": "after"})).is_error:
                await anyio.sleep(0.05)
        assert "incident in progress" in refused.content[0].text
        Broker().resume()
        with anyio.fail_after(5):
            while (await client.call_tool("echo", {"text": "again"})).is_error:
                await anyio.sleep(0.05)
    decisions = {r["decision"] for r in AuditLog(open_store()).query()}
    assert "killed" in decisions


async def test_two_proxies_share_one_queue(tmp_path: Path, store_url: str | None) -> None:
    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.echo'\n")
    async with (
        connect(through_signoff(fake_server("--name", "one"), "--name", "one", "--policy", policy)) as first,
        connect(through_signoff(fake_server("--name", "two"), "--name", "two", "--policy", policy)) as second,
    ):
        results: dict[str, types.CallToolResult] = {}
        async with anyio.create_task_group() as tg:

            async def call(name: str, client) -> None:
                results[name] = await client.call_tool("echo", {"text": f"from {name}"})

            tg.start_soon(call, "one", first)
            tg.start_soon(call, "two", second)
            a = await next_pending()
            b = await next_pending({a.id})
            assert {a.server, b.server} == {"one", "two"}
            assert {h.id for h in Broker().pending()} == {a.id, b.id}
            for held in (a, b):
                Broker().decide(held.id, held.server == "one", reason="only one")
        assert results["one"].content[0].text == "from one"
        assert results["two"].is_error


async def test_progress_keeps_the_client_waiting_and_cancel_withdraws(tmp_path: Path) -> None:
    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.echo'\n")
    env = {"SIGNOFF_PROGRESS_INTERVAL": "0.1"}
    async with connect(through_signoff(fake_server(), "--policy", policy), env=env) as client:
        updates: list[str | None] = []
        got = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            updates.append(message)
            got.set()

        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await client.call_tool("echo", {"text": "x"}, progress_callback=on_progress)

            tg.start_soon(call)
            held = await next_pending()
            with anyio.fail_after(10):
                await got.wait()
            assert updates[0] and held.id in updates[0]
            tg.cancel_scope.cancel()  # the client gives up: a notifications/cancelled goes out
        broker = Broker()
        with anyio.fail_after(10):
            while broker.get(held.id).status == "pending":
                await anyio.sleep(0.02)
        assert broker.get(held.id).status == "withdrawn"


async def test_retry_mode_answers_at_once_and_runs_after_approval(tmp_path: Path, store_url: str | None) -> None:
    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.echo'\n    hold: retry\n")
    async with connect(through_signoff(fake_server(), "--policy", policy)) as client:
        with anyio.fail_after(30):
            first = await client.call_tool("echo", {"text": "retry me"})
            assert first.is_error and "held for the user's approval as" in first.content[0].text
            held = await next_pending()
            assert held.id in first.content[0].text
            again = await client.call_tool("echo", {"text": "retry me"})
            assert again.is_error and held.id in again.content[0].text  # still waiting
            Broker().decide(held.id, True)
            ok = await client.call_tool("echo", {"text": "retry me"})
            assert not ok.is_error and ok.content[0].text == "retry me"
            once = await client.call_tool("echo", {"text": "retry me"})
            assert once.is_error  # single use: a new approval is needed


async def test_observe_mode_holds_nothing_but_records(tmp_path: Path, store_url: str | None) -> None:
    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.echo'\n")
    async with connect(through_signoff(fake_server(), "--policy", policy, "--observe")) as client:
        with anyio.fail_after(30):
            assert not (await client.call_tool("echo", {"text": "x"})).is_error
    rows = AuditLog(open_store()).query(decision="observed")
    assert len(rows) == 1 and rows[0]["reason"].startswith("would be held")


async def test_remembered_approval_skips_the_next_hold(tmp_path: Path, store_url: str | None) -> None:
    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.echo'\n")
    async with connect(through_signoff(fake_server(), "--policy", policy)) as client:

        async def approve_always(held) -> None:
            Broker().decide(held.id, True, remember="tool")

        first = await call_while(client, "echo", {"text": "a"}, approve_always)
        assert not first.is_error
        with anyio.fail_after(10):
            second = await client.call_tool("echo", {"text": "b"})  # no hold this time
        assert second.content[0].text == "b"
        rule = Broker().remembered()[0]
        Broker().revoke(rule.id)

        async def deny(held) -> None:
            Broker().decide(held.id, False)

        third = await call_while(client, "echo", {"text": "c"}, deny)
        assert third.is_error


async def test_the_clients_own_dialog_is_one_more_channel(tmp_path: Path) -> None:
    asked: list[str] = []

    async def dialog(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"decision": "approve"})

    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.echo'\n")
    async with connect(through_signoff(fake_server(), "--policy", policy), elicitation_callback=dialog) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("echo", {"text": "approved in the client"})
    assert not result.is_error and result.content[0].text == "approved in the client"
    assert asked and asked[0].startswith('signoff: approve the call "signoff-testing.echo"?')
    assert asked[0].splitlines()[-1] == '  "text": "approved in the client"'
    rows = AuditLog(open_store()).query(decision="approved")
    assert rows[0]["channel"] == "elicit"


@pytest.mark.parametrize(("action", "expected"), [("decline", "declined in the client's dialog"), ("cancel", None)])
async def test_dialog_decline_denies_and_cancel_leaves_other_channels(tmp_path: Path, action: str, expected) -> None:
    async def dialog(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action=action)

    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.echo'\n")
    async with connect(through_signoff(fake_server(), "--policy", policy), elicitation_callback=dialog) as client:
        if expected:
            with anyio.fail_after(30):
                result = await client.call_tool("echo", {"text": "x"})
            assert result.is_error and expected in result.content[0].text
        else:

            async def approve_elsewhere(held) -> None:
                Broker().decide(held.id, True, channel="cli")

            result = await call_while(client, "echo", {"text": "x"}, approve_elsewhere)
            assert not result.is_error


@pytest.mark.parametrize("server", ["handshake-only", "2026-era"])
@pytest.mark.parametrize(("choice", "approved"), [("approve", True), ("deny", False)])
async def test_stateless_client_approves_in_its_own_dialog(tmp_path: Path, server: str, choice: str, approved: bool) -> None:
    """A 2026-07-28 client gets the dialog as an InputRequiredResult round and retries with the answer."""
    import os

    from mcp import Client, StdioServerParameters

    asked: list[str] = []

    async def dialog(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"decision": choice, "reason": "my call"})

    if server == "handshake-only":
        upstream, tool, args = fake_server(), "echo", {"text": "stateless"}
    else:
        upstream, tool, args = [sys.executable, "-m", "mcp_server_time"], "get_current_time", {"timezone": "UTC"}
    policy = policy_file(tmp_path, f"hitl_policies:\n  - tool: '*.{tool}'\n")
    command = through_signoff(upstream, "--policy", policy)
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with Client(params, mode="2026-07-28", elicitation_callback=dialog) as client:
        with anyio.fail_after(30):
            result = await client.call_tool(tool, args)
    assert asked and ('"text": "stateless"' if tool == "echo" else '"timezone": "UTC"') in asked[0].splitlines()[-1]
    assert result.is_error is (not approved)
    if approved:
        assert "stateless" in result.content[0].text or "UTC" in result.content[0].text
    else:
        assert "my call" in result.content[0].text
    [row] = AuditLog(open_store()).query(decision="approved" if approved else "denied")
    assert row["channel"] == "elicit"


async def test_stateless_client_retry_gets_a_decision_made_elsewhere(tmp_path: Path) -> None:
    import os

    from mcp import Client, StdioServerParameters

    decided = anyio.Event()

    async def dialog(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        held = await next_pending()
        Broker().decide(held.id, False, reason="decided on the web page", channel="web")
        decided.set()
        return types.ElicitResult(action="accept", content={"decision": "approve"})  # too late: first decision wins

    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.echo'\n")
    command = through_signoff(fake_server(), "--policy", policy)
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with Client(params, mode="2026-07-28", elicitation_callback=dialog) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("echo", {"text": "x"})
    assert decided.is_set() and result.is_error and "decided on the web page" in result.content[0].text
