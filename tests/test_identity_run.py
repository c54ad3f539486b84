"""Agent identity through a real `signoff run`: conditions on `agent`, and machine/agent/owner in
every audit row and held row, shown by `signoff pending`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import types

from conftest import connect, fake_server, through_signoff
from signoff.approvals.broker import Broker
from signoff.approvals.store import open_store
from signoff.model import ApprovalRequirements, Identity
from test_policy_run import wait_for_pending

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

POLICY = """\
hitl_policies:
  - tool: "*"
    condition: agent == "ci-bot"
    decision: deny
    reason: "ci-bot may not use tools here"
  - tool: "*.delete_file"
    approvers: [finance]
    quorum: 2
    not_self: true
"""


def client(name: str) -> types.Implementation:
    return types.Implementation(name=name, version="1.0")


def write_policy(tmp_path: Path) -> str:
    path = tmp_path / "team.yaml"
    path.write_text(POLICY)
    return str(path)


def audit_identities() -> list[tuple[str, str, dict | None]]:
    store = open_store()
    try:
        return [(r["tool"], r["decision"], json.loads(r["identity"]) if r["identity"] else None) for r in store.audit_rows()]
    finally:
        store.close()


async def test_the_default_agent_is_the_clients_name_and_the_model_cannot_choose_it(tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    env = {"SIGNOFF_MACHINE": "build-01", "SIGNOFF_AGENT": "", "SIGNOFF_OWNER": ""}
    async with connect(through_signoff(fake_server(), "--policy", policy), env=env, client_info=client("ci-bot")) as bot:
        with anyio.fail_after(30):
            denied = await bot.call_tool("echo", {"text": "hi"})
    assert denied.is_error and "ci-bot may not use tools here" in denied.content[0].text
    async with connect(through_signoff(fake_server(), "--policy", policy), env=env, client_info=client("claude-code")) as other:
        with anyio.fail_after(30):
            fine = await other.call_tool("echo", {"text": "hi", "agent": "ci-bot"})  # an argument is not the agent
    assert not fine.is_error
    rows = audit_identities()
    assert ("echo", "denied", {"machine": "build-01", "agent": "ci-bot", "owner": ""}) in rows
    assert ("echo", "allowed", {"machine": "build-01", "agent": "claude-code", "owner": ""}) in rows


async def test_agent_set_by_signoff_overrides_what_the_client_says(tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    async with connect(
        through_signoff(fake_server(), "--policy", policy, "--agent", "ci-bot"),
        env={"SIGNOFF_AGENT": "", "SIGNOFF_MACHINE": ""},
        client_info=client("claude-code"),
    ) as session:
        with anyio.fail_after(30):
            denied = await session.call_tool("echo", {"text": "hi"})
    assert denied.is_error and "ci-bot may not use tools here" in denied.content[0].text
    async with connect(
        through_signoff(fake_server(), "--policy", policy), env={"SIGNOFF_AGENT": "release-bot"}, client_info=client("ci-bot")
    ) as session:
        with anyio.fail_after(30):
            assert not (await session.call_tool("echo", {"text": "hi"})).is_error
    agents = [who["agent"] for tool, _, who in audit_identities() if who]
    assert agents == ["ci-bot", "release-bot"]


async def test_held_rows_keep_identity_and_requirements_and_every_row_of_the_call_has_them(tmp_path: Path) -> None:
    config = tmp_path / "signoff.yaml"
    config.write_text(
        f"servers:\n  files:\n    command: {sys.executable}\n    args: ['-m', 'signoff.testing']\n"
        f"policy: {write_policy(tmp_path)}\nmachine: laptop-ann\nagent: ann-agent\nowner: ann\n"
    )
    target = tmp_path / "keep.txt"
    target.write_text("x")
    command = [sys.executable, "-m", "signoff", "run", "--config", str(config)]
    env = {"SIGNOFF_AGENT": "", "SIGNOFF_MACHINE": "", "SIGNOFF_OWNER": ""}
    async with connect(command, env=env, client_info=client("claude-code")) as session:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def inspect_then_deny() -> None:
                    held = await wait_for_pending()
                    assert held.identity == Identity("laptop-ann", "ann-agent", "ann")
                    assert held.requirements == ApprovalRequirements(2, (("finance",),), True)
                    shown = (await anyio.run_process([sys.executable, "-m", "signoff", "pending"])).stdout.decode()
                    assert f"{held.id}  files.delete_file" in shown
                    assert "agent ann-agent on laptop-ann (owner ann)" in shown
                    assert "needs 2 approvals from finance; not the agent's owner" in shown
                    listed = json.loads((await anyio.run_process([sys.executable, "-m", "signoff", "pending", "--json"])).stdout)
                    assert listed[0]["agent"] == "ann-agent" and listed[0]["approval"]["quorum"] == 2
                    Broker().decide(held.id, False, reason="no", by="bob")

                tg.start_soon(inspect_then_deny)
                result = await session.call_tool("delete_file", {"path": str(target)})
    assert result.is_error and target.exists()
    who = {"machine": "laptop-ann", "agent": "ann-agent", "owner": "ann"}
    rows = audit_identities()
    assert ("delete_file", "held", who) in rows and ("delete_file", "denied", who) in rows
    verified = await anyio.run_process([sys.executable, "-m", "signoff", "audit", "verify"], check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_bad_identity_name_stops_signoff_with_where_it_came_from(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "signoff", "run", "--policy", "none", "--agent", "bad name", "--", *fake_server()],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2 and "--agent" in done.stderr and "'bad name'" in done.stderr
    config = tmp_path / "signoff.yaml"
    config.write_text(f"servers:\n  f:\n    command: {sys.executable}\nowner: 'ann\\u202e'\n")
    done = subprocess.run(
        [sys.executable, "-m", "signoff", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2 and "signoff.yaml:4: owner:" in done.stderr


async def test_over_http_each_session_is_the_agent_its_client_names(tmp_path: Path) -> None:
    import httpx2

    from http_helpers import HEADERS, body, initialize, serving

    def echo(request_id: int) -> str:
        return body(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "hi", "agent": "human"}},
            }
        )

    async with (
        serving(
            fake_server(),
            "--policy",
            write_policy(tmp_path),
            "--machine",
            "gateway-1",
            env={"SIGNOFF_AGENT": "", "SIGNOFF_OWNER": ""},
        ) as server,
        httpx2.AsyncClient(timeout=30, trust_env=False) as http,
    ):
        with anyio.fail_after(30):
            bot = await initialize(http, server.url, clientInfo={"name": "ci-bot", "version": "1"})
            person = await initialize(http, server.url, clientInfo={"name": "cursor", "version": "1"})
            denied = (await http.post(server.url, content=echo(2), headers={**HEADERS, "mcp-session-id": bot})).json()
            fine = (await http.post(server.url, content=echo(2), headers={**HEADERS, "mcp-session-id": person})).json()
    assert denied["result"]["isError"] and "ci-bot may not use tools here" in denied["result"]["content"][0]["text"]
    assert not fine["result"].get("isError")
    rows = audit_identities()
    assert ("echo", "denied", {"machine": "gateway-1", "agent": "ci-bot", "owner": ""}) in rows
    assert ("echo", "allowed", {"machine": "gateway-1", "agent": "cursor", "owner": ""}) in rows
