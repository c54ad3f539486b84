"""Frame-level HTTP serving: JSON or SSE per POST, resumable streams, shared upstreams, no SDK import."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from conftest import fake_server
from http_helpers import HEADERS, body, events, initialize, serving

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def _client():
    import httpx2

    return httpx2.AsyncClient(timeout=30, trust_env=False)


def call(request_id, name: str, arguments: dict, token=None) -> str:
    params = {"name": name, "arguments": arguments}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return body({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


async def test_answer_first_is_plain_json_notifications_first_is_sse() -> None:
    async with serving(fake_server()) as server, _client() as http:
        session = await initialize(http, server.url)
        headers = {**HEADERS, "mcp-session-id": session}
        plain = await http.post(server.url, content=call(2, "echo", {"text": "hi"}), headers=headers)
        assert plain.headers["content-type"] == "application/json"
        assert plain.json()["result"]["content"][0]["text"] == "hi"
        streamed = await http.post(server.url, content=call(3, "slow", {"seconds": 0.1}, token="t"), headers=headers)
        assert streamed.headers["content-type"] == "text/event-stream"
        got = events(streamed.text)
        assert got[0]["data"] == "" and got[0]["id"].endswith("/0") and got[0]["retry"]  # 2025-11-25 priming
        frames = [json.loads(e["data"]) for e in got[1:]]
        assert [f.get("params", {}).get("progress") for f in frames[:3]] == [1, 2, 3]
        assert frames[-1]["id"] == 3 and frames[-1]["result"]["content"][0]["text"] == "done"
        ids = [e["id"] for e in got]
        assert len(set(ids)) == len(ids)


async def test_dropped_stream_resumes_without_loss_or_duplication() -> None:
    async with serving(fake_server()) as server, _client() as http:
        session = await initialize(http, server.url)
        headers = {**HEADERS, "mcp-session-id": session}
        seen: list[dict[str, str]] = []
        async with http.stream(
            "POST", server.url, content=call(7, "slow", {"seconds": 1.5}, token="p"), headers=headers
        ) as response:
            assert response.headers["content-type"] == "text/event-stream"
            buffer = ""
            async for chunk in response.aiter_text():
                buffer += chunk
                seen = [e for e in events(buffer.rsplit("\n\n", 1)[0]) if e.get("data")]
                if seen:
                    break  # drop the connection after the first progress event
        assert json.loads(seen[0]["data"])["params"]["progress"] == 1
        resumed = await http.get(
            server.url, headers={"accept": "text/event-stream", "mcp-session-id": session, "last-event-id": seen[0]["id"]}
        )
        assert resumed.status_code == 200
        rest = [json.loads(e["data"]) for e in events(resumed.text) if e.get("data")]
        assert [m.get("params", {}).get("progress") for m in rest[:-1]] == [2, 3]
        assert rest[-1]["id"] == 7 and rest[-1]["result"]["content"][0]["text"] == "done"
        gone = await http.get(
            server.url, headers={"accept": "text/event-stream", "mcp-session-id": session, "last-event-id": seen[0]["id"]}
        )
        assert gone.status_code == 404  # delivered in full: nothing left to resume


async def test_unresumed_stream_withdraws_its_held_call(tmp_path: Path) -> None:
    """A client that dropped its stream and did not come back stopped waiting: the held call ends."""
    from signoff.approvals.broker import Broker

    policy = tmp_path / "hold.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*.echo'\n")
    async with (
        serving(fake_server(), "--policy", str(policy), env={"SIGNOFF_HTTP_RESUME_WINDOW": "0.5"}) as server,
        _client() as http,
    ):
        session = await initialize(http, server.url)
        headers = {**HEADERS, "mcp-session-id": session}
        broker = Broker()
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:

                async def post_and_drop() -> None:
                    with anyio.CancelScope() as scope:
                        tg_scope.append(scope)
                        await http.post(server.url, content=call(9, "echo", {"text": "risky"}), headers=headers)

                tg_scope: list[anyio.CancelScope] = []
                tg.start_soon(post_and_drop)
                while not broker.store.list_held():
                    await anyio.sleep(0.05)
                held = broker.store.list_held()[0]
                tg_scope[0].cancel()  # the client goes away without cancelling
            while broker.get(held.id).status == "pending":
                await anyio.sleep(0.05)
        assert broker.get(held.id).status == "withdrawn"


async def test_shared_upstream_keeps_sessions_apart() -> None:
    """Two sessions on one shared upstream, same request ids and progress tokens: no cross-talk."""
    async with serving(fake_server()) as server, _client() as http:
        await server.wait_children(1)
        sessions = [await initialize(http, server.url) for _ in range(2)]
        results: dict[str, list] = {}

        async def run(session: str, word: str) -> None:
            headers = {**HEADERS, "mcp-session-id": session}
            answer = await http.post(server.url, content=call(1, "slow", {"seconds": 0.3}, token="same"), headers=headers)
            echoed = await http.post(server.url, content=call(2, "echo", {"text": word}), headers=headers)
            results[word] = [json.loads(e["data"]) for e in events(answer.text) if e.get("data")] + [echoed.json()]

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, sessions[0], "alpha")
                tg.start_soon(run, sessions[1], "beta")
        for word, frames in results.items():
            progress = [f["params"]["progress"] for f in frames if f.get("method") == "notifications/progress"]
            assert progress == [1, 2, 3], word
            assert [f["id"] for f in frames if "id" in f] == [1, 2]
            assert frames[-1]["result"]["content"][0]["text"] == word
        assert len(server.children()) == 1


async def test_http_serving_never_imports_the_sdk() -> None:
    async with serving(fake_server(), python_options=("-X", "importtime")) as server, _client() as http:
        session = await initialize(http, server.url)
        answer = await http.post(
            server.url, content=call(2, "echo", {"text": "x"}), headers={**HEADERS, "mcp-session-id": session}
        )
        assert answer.status_code == 200
        imported = [line.rsplit("|", 1)[-1].strip() for line in server.log if line.startswith("import time:")]
        assert "signoff.serve.http" in imported
        # nor typer (cli/run.py parses `run`) nor pydantic (the policy is validated by pydantic_core):
        # together ~8 MB resident and ~150 ms of start-up (benchmarks/README.md)
        heavy = ("mcp", "mcp_types", "starlette", "typer", "pydantic")
        assert not [m for m in imported if m.split(".")[0] in heavy], sys.version


async def test_batch_and_older_revision_without_priming() -> None:
    """A 2025-03-26 client may batch; its streams carry ids but no priming event (new in 2025-11-25)."""
    async with serving(fake_server()) as server, _client() as http:
        session = await initialize(http, server.url, protocolVersion="2025-03-26")
        headers = {**HEADERS, "mcp-session-id": session}
        batch = "[" + call(1, "echo", {"text": "a"}) + "," + call(2, "echo", {"text": "b"}) + "]"
        answer = await http.post(server.url, content=batch, headers=headers)
        got = events(answer.text)
        assert all(e.get("data") for e in got) and all(e.get("id") for e in got)
        frames = sorted((json.loads(e["data"]) for e in got), key=lambda f: f["id"])
        assert [f["result"]["content"][0]["text"] for f in frames] == ["a", "b"]
        again = await http.post(server.url, content=call(1, "echo", {"text": "c"}), headers=headers)
        assert again.json()["result"]["content"][0]["text"] == "c"  # ids may be reused once answered


async def test_shared_upstream_keeps_each_sessions_log_level() -> None:
    async with serving(fake_server()) as server, _client() as http:
        quiet, chatty, silent = [await initialize(http, server.url) for _ in range(3)]
        for session, wanted in ((quiet, "error"), (chatty, "debug")):
            level = body({"jsonrpc": "2.0", "id": 5, "method": "logging/setLevel", "params": {"level": wanted}})
            assert "result" in (await http.post(server.url, content=level, headers={**HEADERS, "mcp-session-id": session})).json()
        answer = await http.post(server.url, content=call(6, "announce", {}), headers={**HEADERS, "mcp-session-id": quiet})
        methods = [json.loads(e["data"]).get("method") for e in events(answer.text) if e.get("data")]
        assert "notifications/tools/list_changed" in methods
        assert "notifications/message" not in methods  # an info message, below this session's level
        with anyio.fail_after(10):  # the debug-level session gets both on its GET stream
            async with http.stream(
                "GET", server.url, headers={"accept": "text/event-stream", "mcp-session-id": chatty}
            ) as stream:
                text = ""
                async for chunk in stream.aiter_text():
                    text += chunk
                    if "notifications/message" in text and "list_changed" in text:
                        break
        # a session that never set a level gets the list_changed but none of the server-wide logs
        own = await http.post(server.url, content=call(7, "announce", {}), headers={**HEADERS, "mcp-session-id": silent})
        methods = [json.loads(e["data"]).get("method") for e in events(own.text) if e.get("data")]
        assert "notifications/tools/list_changed" in methods and "notifications/message" not in methods


async def test_several_servers_share_an_upstream_each(tmp_path: Path) -> None:
    config = tmp_path / "signoff.yaml"
    config.write_text(
        "servers:\n"
        + "".join(
            f"  {name}:\n    command: {sys.executable}\n    args: [-m, signoff.testing, --name, {name}]\n"
            for name in ("one", "two")
        )
    )
    async with serving([], "--config", str(config)) as server, _client() as http:
        await server.wait_children(2)
        session = await initialize(http, server.url)
        headers = {**HEADERS, "mcp-session-id": session}
        listed = await http.post(server.url, content=body({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), headers=headers)
        names = {t["name"] for t in listed.json()["result"]["tools"]}
        assert {"one.echo", "two.echo"} <= names
        echoed = await http.post(server.url, content=call(3, "two.echo", {"text": "second"}), headers=headers)
        assert echoed.json()["result"]["content"][0]["text"] == "second"
        assert len(server.children()) == 2
