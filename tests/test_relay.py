"""In-process relay behaviour: failures of either side never crash the proxy or hang the client."""

from __future__ import annotations

import sys

import pytest

from harness import running, text_of
from signoff.gate import Admission
from signoff.model import ToolCall
from signoff.relay import jsonrpc
from signoff.relay.upstream import ServerSpec

pytestmark = pytest.mark.anyio


def fake(name: str = "fake", *extra: str, timeout: float = 30.0) -> ServerSpec:
    return ServerSpec(name=name, command=sys.executable, args=("-m", "signoff.testing", "--name", name, *extra), timeout=timeout)


async def test_calls_and_lists_pass_through() -> None:
    async with running([fake()]) as client:
        init = await client.initialize()
        assert init["result"]["serverInfo"]["name"] == "fake"
        tools = await client.request("tools/list")
        assert "echo" in [t["name"] for t in tools["result"]["tools"]]
        answer = await client.call("echo", {"text": "hi"})
        assert answer["result"]["structuredContent"] == {"text": "hi"}
        assert client.proxy.tools["fake"]["write_file"]["destructiveHint"] is True


async def test_crashed_upstream_answers_with_its_stderr_then_restarts() -> None:
    async with running([fake()]) as client:
        await client.initialize()
        crashed = await client.call("crash")
        assert crashed["result"]["isError"] is True
        message = text_of(crashed)
        assert "exited (code 3)" in message
        assert "crashing on purpose" in message  # the stderr tail explains why
        up = client.proxy.upstreams[0]
        assert up.generation == 1 and not up.alive
        again = await client.call("echo", {"text": "back"})
        assert text_of(again) == "back"
        assert up.generation == 2 and up.alive


async def test_hung_upstream_gets_a_bounded_wait() -> None:
    async with running([fake(timeout=0.5)]) as client:
        await client.initialize()
        hung = await client.call("hang", timeout=10)
        assert hung["result"]["isError"] is True
        assert "did not answer tools/call within 0.5s" in text_of(hung)
        assert text_of(await client.call("echo", {"text": "still here"})) == "still here"


async def test_hung_non_tool_request_gets_a_json_rpc_error() -> None:
    async with running([fake("fake", "--hang-on", "tools/list", timeout=0.5)]) as client:
        await client.initialize()
        answer = await client.request("tools/list", timeout=10)
        assert answer["error"]["code"] == jsonrpc.UPSTREAM_ERROR
        assert "did not answer tools/list within 0.5s" in answer["error"]["message"]
        unknown = await client.request("resources/list")
        assert unknown["error"]["code"] == jsonrpc.METHOD_NOT_FOUND  # errors from upstream pass as they are


async def test_malformed_client_frames_get_parse_errors_and_serving_continues() -> None:
    async with running([fake()]) as client:
        await client.initialize()
        await client.send_raw(b"{this is not json\n")
        await client.send_raw(b'{"id": 5, "method": "tools/list"}\n')  # no "jsonrpc": "2.0"
        errors = [m for m in client.received if m.get("error", {}).get("code") == jsonrpc.PARSE_ERROR]
        assert len(errors) == 2 and all(e["id"] is None for e in errors)
        await client.send({"jsonrpc": "2.0", "id": 77})  # neither request nor response
        invalid = await client.wait_for(lambda m: m.get("id") == 77)
        assert invalid["error"]["code"] == jsonrpc.INVALID_REQUEST
        assert text_of(await client.call("echo", {"text": "ok"})) == "ok"


async def test_malformed_upstream_frame_is_logged_and_skipped() -> None:
    async with running([fake()]) as client:
        await client.initialize()
        answer = await client.call("garbage", {"text": "after garbage"})
        assert text_of(answer) == "after garbage"
        assert "not JSON-RPC" in client.proxy.upstreams[0].stderr_tail()


async def test_batch_from_client_is_handled_message_by_message() -> None:
    async with running([fake()]) as client:
        await client.initialize()
        await client.send_raw(b'[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","id":"b","method":"tools/list"}]\n')
        assert (await client.wait_for(lambda m: m.get("id") == "a"))["result"] == {}
        assert "tools" in (await client.wait_for(lambda m: m.get("id") == "b"))["result"]


async def test_missing_command_is_a_clear_error_for_initialize() -> None:
    spec = ServerSpec(name="ghost", command="no-such-mcp-server-xyz")
    async with running([spec]) as client:
        answer = await client.request(
            "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        )
        assert answer["error"]["code"] == jsonrpc.UPSTREAM_ERROR
        assert "'no-such-mcp-server-xyz' not found" in answer["error"]["message"]


async def test_server_that_dies_at_start_reports_its_stderr() -> None:
    async with running([fake("db", "--fail-start")]) as client:
        answer = await client.request(
            "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        )
        assert "error" in answer
        assert "cannot open its database" in answer["error"]["message"]
        tool = await client.call("echo", {"text": "x"})
        assert tool["result"]["isError"] is True
        assert "cannot open its database" in text_of(tool)


async def test_invalid_tool_call_params() -> None:
    async with running([fake()]) as client:
        await client.initialize()
        answer = await client.request("tools/call", {"arguments": {}})
        assert answer["error"]["code"] == jsonrpc.INVALID_PARAMS


async def test_elicitation_from_upstream_reaches_the_client_and_back() -> None:
    async with running([fake()]) as client:
        await client.initialize()
        await client.send(jsonrpc.request(9, "tools/call", {"name": "ask_user", "arguments": {"question": "name?"}}))
        asked = await client.wait_for(lambda m: m.get("method") == "elicitation/create")
        assert asked["params"]["message"] == "name?"
        await client.send(jsonrpc.result(asked["id"], {"action": "accept", "content": {"answer": "Ada"}}))
        answer = await client.wait_for(lambda m: m.get("id") == 9 and "result" in m)
        assert "Ada" in text_of(answer)


async def test_progress_notifications_pass_through() -> None:
    async with running([fake()]) as client:
        await client.initialize()
        await client.send(
            jsonrpc.request(3, "tools/call", {"name": "slow", "arguments": {"seconds": 0.1}, "_meta": {"progressToken": "p1"}})
        )
        await client.wait_for(lambda m: m.get("id") == 3)
        progress = [m for m in client.received if m.get("method") == "notifications/progress"]
        assert [p["params"]["progress"] for p in progress] == [1, 2, 3]


class RecordingGate:
    """Refuses write_file, allows the rest, and records what finished."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.finished_calls: list[tuple[str, bool]] = []

    def check(self, call: ToolCall) -> Admission:
        self.seen.append(call.qualified)
        if call.tool == "write_file":
            return Admission(False, "blocked by test gate")
        return Admission(True)

    async def hold(self, call, admission, progress, client=None):  # pragma: no cover - never asked to hold
        raise AssertionError

    def finished(self, call: ToolCall, admission: Admission, *, is_error: bool, error: str | None = None) -> None:
        self.finished_calls.append((call.qualified, is_error))


async def test_every_call_goes_through_the_gate(tmp_path) -> None:
    gate = RecordingGate()
    target = tmp_path / "x.txt"
    async with running([fake()], gate) as client:
        await client.initialize()
        refused = await client.call("write_file", {"path": str(target), "content": "x"})
        assert refused["result"] == {"content": [{"type": "text", "text": "blocked by test gate"}], "isError": True}
        assert not target.exists()
        await client.call("echo", {"text": "a"})
        await client.call("crash")
    assert gate.seen == ["fake.write_file", "fake.echo", "fake.crash"]
    assert gate.finished_calls == [("fake.echo", False), ("fake.crash", True)]


async def test_cancellation_reaches_the_upstream() -> None:
    async with running([fake()]) as client:
        await client.initialize()
        await client.send(jsonrpc.request("slow-1", "tools/call", {"name": "hang", "arguments": {}}))
        await client.send(jsonrpc.notification("notifications/cancelled", {"requestId": "slow-1", "reason": "user"}))
        seen = await client.call("cancelled_ids")
        assert "slow-1" in text_of(seen)


async def test_list_changed_and_log_notifications_pass_through() -> None:
    async with running([fake()]) as client:
        await client.initialize()
        await client.call("announce")
        methods = [m.get("method") for m in client.received]
        assert "notifications/tools/list_changed" in methods
        assert "notifications/message" in methods


async def test_signoffs_own_client_requests_are_answered_and_never_forwarded() -> None:
    import anyio

    async with running([fake()]) as client:
        await client.initialize()
        assert client.proxy.client_capability("elicitation") == {}
        assert client.proxy.client_capability("sampling") is None
        answers: list[dict] = []

        async def ask() -> None:
            answers.append(
                await client.proxy.ask_client(
                    "elicitation/create", {"message": "Approve?", "requestedSchema": {"type": "object"}}
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            asked = await client.wait_for(lambda m: m.get("method") == "elicitation/create")
            await client.send(jsonrpc.result(asked["id"], {"action": "accept", "content": {"decision": "approve"}}))
        assert answers[0]["result"]["action"] == "accept"
        # a withdrawn question is cancelled at the client
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await client.wait_for(lambda m: m.get("method") == "elicitation/create" and m["id"] != asked["id"])
            tg.cancel_scope.cancel()
        cancelled = await client.wait_for(lambda m: m.get("method") == "notifications/cancelled")
        assert cancelled["params"]["reason"] == "decided elsewhere"
        assert text_of(await client.call("cancelled_ids")) == "[]"  # nothing leaked upstream
