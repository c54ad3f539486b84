"""Issue #10 item 2: a `tools/call` in any shape but a request goes through the gate or nowhere.

A notification (no id) cannot be held or answered, so it is refused and audited; so is a method
name that is not `tools/call` but that a lenient server would take for it, a tool name that is
not the server's but reads as one of its tools once trimmed or case-folded, and arguments that
are not an object. Batch elements go the same way as single messages. The naive server runs
all of these when it gets them directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import through_signoff
from harness import running
from security.support import RecordingGate, barrier, naive_command, naive_log, naive_ran, naive_spec, raw_process
from signoff.approvals.audit import AuditLog
from signoff.approvals.store import open_store
from signoff.relay import jsonrpc

pytestmark = pytest.mark.anyio

CALL = {"name": "delete_file", "arguments": {"path": "/important"}}
LOOK_ALIKES = [
    "Tools/Call",
    " tools/call",
    "tools/call ",
    "tools.call",
    "tools\\call",
    "TOOLS/CALL",
    "tools/call\u200b",
    "\uff54\uff4f\uff4f\uff4c\uff53/\uff43\uff41\uff4c\uff4c",
    "tools_call",
]
NAIVE_RUNS = ["Tools/Call", " tools/call", "tools/call ", "tools.call", "tools\\call", "TOOLS/CALL"]


def frames() -> dict[str, bytes]:
    notification = jsonrpc.encode(jsonrpc.notification("tools/call", CALL))
    batch = json.dumps([jsonrpc.notification("tools/call", CALL), jsonrpc.request("b", "ping")]).encode() + b"\n"
    out = {"notification": notification, "notification_in_batch": batch}
    for method in LOOK_ALIKES:
        out[f"request {method!r}"] = json.dumps(jsonrpc.request("odd-1", method, CALL)).encode() + b"\n"
        out[f"notification {method!r}"] = json.dumps(jsonrpc.notification(method, CALL)).encode() + b"\n"
    return out


FRAMES = frames()


@pytest.mark.parametrize("shape", sorted(FRAMES))
async def test_tools_call_in_another_shape_is_refused_and_never_runs(tmp_path: Path, shape: str) -> None:
    log = tmp_path / "naive.log"
    gate = RecordingGate()
    async with running([naive_spec(log)], gate) as client:
        await client.initialize()
        await client.send_raw(FRAMES[shape])
        await barrier(client)
        if shape.startswith("request"):
            answer = await client.wait_for(lambda m: m.get("id") == "odd-1")
            assert answer["error"]["code"] == jsonrpc.METHOD_NOT_FOUND
            assert "imitates tools/call" in answer["error"]["message"]
    assert naive_ran(log) == []
    assert not [e for e in naive_log(log) if e.get("params", {}).get("name") == "delete_file"]
    assert gate.checked == []  # never reached the policy: refused before it
    [(call, reason)] = gate.refusals
    assert call.tool == "delete_file" and call.arguments == {"path": "/important"}
    assert "refused by signoff" in reason


@pytest.mark.parametrize(
    "shape",
    ["notification", "notification_in_batch"] + [f"{kind} {m!r}" for m in NAIVE_RUNS for kind in ("request", "notification")],
)
async def test_the_naive_server_runs_them_when_sent_directly(tmp_path: Path, shape: str) -> None:
    log = tmp_path / "naive.log"
    async with raw_process(naive_command(log)) as server:
        await server.write(FRAMES[shape])
        await server.request("barrier", "ping")
    assert naive_ran(log) == ["delete_file"]


async def test_batch_elements_each_go_through_the_gate(tmp_path: Path) -> None:
    log = tmp_path / "naive.log"
    gate = RecordingGate()
    batch = [
        jsonrpc.request("a", "tools/call", {"name": "echo", "arguments": {"text": "1"}}),
        jsonrpc.request("b", "tools/call", CALL),
        jsonrpc.request("c", "tools/call", {"name": "echo", "arguments": {"text": "2"}}),
    ]
    async with running([naive_spec(log)], gate) as client:
        await client.initialize()
        await client.send_raw(json.dumps(batch).encode() + b"\n")
        refused = await client.wait_for(lambda m: m.get("id") == "b")
        await client.wait_for(lambda m: m.get("id") == "c")
    assert refused["result"]["isError"] is True
    assert [c.tool for c in gate.checked] == ["echo", "delete_file", "echo"]
    assert naive_ran(log) == ["echo", "echo"]


@pytest.mark.e2e
async def test_tools_call_notification_is_audited_through_signoff_run(tmp_path: Path) -> None:
    """With the real gate: the refused notification leaves a `denied` audit row, the call never runs."""
    log = tmp_path / "naive.log"
    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: 'naive.delete_file'\n    decision: deny\n")
    async with raw_process(through_signoff(naive_command(log), "--name", "naive", "--policy", str(policy))) as client:
        await client.initialize()
        await client.write(FRAMES["notification"])
        await client.write(FRAMES["request 'Tools/Call'"])
        await client.wait_for(lambda m: m.get("id") == "odd-1")
        await client.request("barrier", "ping")
    assert naive_ran(log) == []
    rows = AuditLog(open_store()).query(decision="denied")
    assert len(rows) == 2 and all(r["tool"] == "delete_file" and r["channel"] == "signoff" for r in rows)
    assert "notification" in rows[0]["reason"] + rows[1]["reason"]


TOOL_LOOK_ALIKES = ["Delete_File", "delete_file ", " delete_file", "delete\u200b_file", "DELETE-FILE", "delete_file\t"]


@pytest.mark.parametrize("name", TOOL_LOOK_ALIKES)
async def test_tool_name_look_alike_is_refused_not_waved_past_the_policy(tmp_path: Path, name: str) -> None:
    """The gate refuses `delete_file`; a name the server would fold into it must not pass as another tool."""
    log = tmp_path / "naive.log"
    gate = RecordingGate()
    async with running([naive_spec(log)], gate) as client:
        await client.initialize()
        await client.request("tools/list")  # signoff knows the server's tool names
        answer = await client.call(name, {"path": "/important"})
    assert answer["error"]["code"] == jsonrpc.INVALID_PARAMS and "tool name" in answer["error"]["message"]
    assert naive_ran(log) == [] and gate.checked == []
    [(call, _reason)] = gate.refusals
    assert call.tool == name


@pytest.mark.parametrize("name", TOOL_LOOK_ALIKES)
async def test_the_naive_server_runs_tool_look_alikes_directly(tmp_path: Path, name: str) -> None:
    log = tmp_path / "naive.log"
    async with raw_process(naive_command(log)) as server:
        await server.request(1, "tools/call", {"name": name, "arguments": {}})
    assert naive_ran(log) == ["delete_file"]


@pytest.mark.parametrize("arguments", ['"{\\"path\\": \\"/important\\"}"', '["/important"]', "7"])
async def test_arguments_that_are_not_an_object_are_refused(tmp_path: Path, arguments: str) -> None:
    """The policy would judge `{}`; a lenient server might parse the string or list it was sent."""
    log = tmp_path / "naive.log"
    gate = RecordingGate()
    frame = '{"jsonrpc":"2.0","id":"odd-2","method":"tools/call","params":{"name":"echo","arguments":' + arguments + "}}\n"
    async with running([naive_spec(log)], gate) as client:
        await client.initialize()
        await client.send_raw(frame.encode())
        answer = await client.wait_for(lambda m: m.get("id") == "odd-2")
    assert answer["error"]["code"] == jsonrpc.INVALID_PARAMS and "must be an object" in answer["error"]["message"]
    assert naive_ran(log) == [] and gate.checked == []
