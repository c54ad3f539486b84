"""Issue #10 item 3: an approval round (2026-07-28 clients) approves the held call and nothing else.

A stateless client gets the approval dialog as an `InputRequiredResult` with a `requestState`
and retries with its answer. The attack: retry with that `requestState` (and an "approve"
answer) but another tool, other arguments, after the policy changed, or a second time. Each is
refused with an isError result and a `denied` audit row, and the naive server never runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from conftest import through_signoff
from security.support import naive_command, naive_ran, raw_process
from signoff.approvals.audit import AuditLog
from signoff.approvals.store import open_store

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
    "io.modelcontextprotocol/clientInfo": {"name": "attacker", "version": "1"},
}
APPROVE = {"signoff_approval": {"action": "accept", "content": {"decision": "approve"}}}
POLICY = "hitl_policies:\n  - tool: 'naive.echo'\n"


def call(name: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments, "_meta": ENVELOPE, **extra}


async def held_round(client, request_id: str = "c1") -> str:
    """Make the held call and return the requestState of the approval round it is answered with."""
    answer = await client.request(request_id, "tools/call", call("echo", {"text": "harmless"}))
    result = answer["result"]
    assert result["resultType"] == "input_required", answer
    assert result["inputRequests"]["signoff_approval"]["method"] == "elicitation/create"
    return result["requestState"]


def text(answer: dict[str, Any]) -> str:
    return "\n".join(c.get("text", "") for c in answer["result"].get("content", []))


def signoff(tmp_path: Path, log: Path) -> list[str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return through_signoff(naive_command(log), "--name", "naive", "--policy", str(policy))


@pytest.mark.parametrize(
    ("name", "arguments", "why"),
    [
        ("delete_file", {"path": "/important"}, "was for naive.echo, not naive.delete_file"),
        ("echo", {"text": "something else"}, "was for other arguments of naive.echo"),
        ("echo", {"text": "harmless", "extra": 1}, "was for other arguments of naive.echo"),
    ],
    ids=["other-tool", "other-arguments", "added-argument"],
)
async def test_retry_with_the_round_for_another_call_is_refused(tmp_path: Path, name: str, arguments: dict, why: str) -> None:
    log = tmp_path / "naive.log"
    async with raw_process(signoff(tmp_path, log)) as client:
        state = await held_round(client)
        answer = await client.request("c2", "tools/call", call(name, arguments, requestState=state, inputResponses=APPROVE))
        assert answer["result"]["isError"] is True
        assert why in text(answer) and "refused" in text(answer)
        # the round is spent: presenting it again (even for the right call) does not reuse it
        again = await client.request(
            "c3", "tools/call", call("echo", {"text": "harmless"}, requestState=state, inputResponses=APPROVE)
        )
        assert again["result"].get("resultType") == "input_required"  # held afresh, not run
    assert naive_ran(log) == []
    [row] = [r for r in AuditLog(open_store()).query(decision="denied") if r["channel"] == "signoff"]
    assert row["tool"] == name and why in row["reason"]


async def test_matching_retry_runs_the_held_call_once(tmp_path: Path) -> None:
    log = tmp_path / "naive.log"
    async with raw_process(signoff(tmp_path, log)) as client:
        state = await held_round(client)
        answer = await client.request(
            "c2", "tools/call", call("echo", {"text": "harmless"}, requestState=state, inputResponses=APPROVE)
        )
        assert answer["result"]["isError"] is False and text(answer) == "ran echo"
        replay = await client.request(
            "c3", "tools/call", call("echo", {"text": "harmless"}, requestState=state, inputResponses=APPROVE)
        )
        assert replay["result"].get("resultType") == "input_required"  # single use: a new hold
    assert naive_ran(log) == ["echo"]
    [row] = AuditLog(open_store()).query(decision="approved")
    assert row["tool"] == "echo" and row["channel"] == "elicit"


async def test_retry_after_the_policy_changed_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "naive.log"
    command = signoff(tmp_path, log)
    async with raw_process(command) as client:
        state = await held_round(client)
        (tmp_path / "policy.yaml").write_text(POLICY + "  - tool: 'naive.canary'\n    decision: deny\n")
        with anyio.fail_after(30):  # wait until the proxy runs the new policy (it checks the file each second)
            n = 0
            while True:
                n += 1
                probe = await client.request(f"probe-{n}", "tools/call", call("canary", {}))
                if probe["result"]["isError"]:
                    break
        answer = await client.request(
            "c2", "tools/call", call("echo", {"text": "harmless"}, requestState=state, inputResponses=APPROVE)
        )
        assert answer["result"]["isError"] is True and "the policy changed" in text(answer)
    assert "echo" not in naive_ran(log)


async def test_retry_after_the_client_cancelled_the_held_call_is_answered_not_hung(tmp_path: Path) -> None:
    log = tmp_path / "naive.log"
    async with raw_process(signoff(tmp_path, log)) as client:
        state = await held_round(client)
        await client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "c1"}})
        answer = await client.request(
            "c2", "tools/call", call("echo", {"text": "harmless"}, requestState=state, inputResponses=APPROVE)
        )
        assert answer["result"]["isError"] is True and "withdrawn" in text(answer)
    assert naive_ran(log) == []
