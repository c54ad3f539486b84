"""Hostile requests to `signoff run --http`: refused before anything is spawned, bounded, reaped.

Each test counts the server's child processes (upstreams) from /proc before and after.
"""

from __future__ import annotations

import json

import anyio
import pytest

from conftest import fake_server
from http_helpers import HEADERS, INIT, body, initialize, serving

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def _client():
    import httpx2

    return httpx2.AsyncClient(timeout=30, trust_env=False)


def _error(response) -> dict:
    payload = response.json()
    assert payload["jsonrpc"] == "2.0" and "error" in payload, response.text
    return payload["error"]


async def test_refused_requests_spawn_nothing() -> None:
    """Every refusal happens before a spawn; only a valid initialize starts an upstream."""
    async with serving(fake_server(), "--share", "session") as server, _client() as http:
        assert server.children() == []
        init = body(INIT)
        cases = [
            ({"content-type": "text/plain", "accept": HEADERS["accept"]}, init, 415),  # a cross-origin "simple" POST
            ({**HEADERS, "host": f"evil.example:{server.port}"}, init, 403),  # DNS rebinding
            ({**HEADERS, "origin": "http://evil.example"}, init, 403),
            ({**HEADERS, "origin": "null"}, init, 403),
            ({"content-type": "application/json", "accept": "application/json"}, init, 406),
            (HEADERS, "{not json", 400),
            (HEADERS, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}), 400),  # no session
            (HEADERS, json.dumps({**INIT, "params": {"capabilities": {}}}), 400),  # initialize without a version
            (HEADERS, json.dumps([INIT, INIT]), 400),  # a batched initialize
            (HEADERS, json.dumps({**INIT, "id": {"not": "hashable"}}), 400),
            (HEADERS, json.dumps({**INIT, "id": None}), 400),
            ({**HEADERS, "mcp-session-id": "f" * 32}, init, 404),
        ]
        for headers, content, status in cases:
            response = await http.post(server.url, content=content, headers=headers)
            assert response.status_code == status, (headers, content, response.text)
            _error(response)
        assert server.children() == []
        await initialize(http, server.url)
        await server.wait_children(1)


async def test_bad_host_is_403_with_a_json_rpc_error() -> None:
    async with serving(fake_server()) as server, _client() as http:
        response = await http.get(server.url, headers={"host": "attacker.example", "accept": "text/event-stream"})
        assert response.status_code == 403
        assert "attacker.example" in _error(response)["message"]


async def test_session_cap_and_body_cap() -> None:
    async with (
        serving(fake_server(), "--share", "session", "--http-max-sessions", "2", "--http-max-body", "2000") as server,
        _client() as http,
    ):
        first = await initialize(http, server.url)
        await initialize(http, server.url)
        third = await http.post(server.url, content=body(INIT), headers=HEADERS)
        assert third.status_code == 503
        assert "2 sessions" in _error(third)["message"]
        assert len(server.children()) == 2
        big = json.dumps(
            {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x" * 5000}}}
        )
        response = await http.post(server.url, content=big, headers={**HEADERS, "mcp-session-id": first})
        assert response.status_code == 413
        assert "2000 bytes" in _error(response)["message"]
        deleted = await http.delete(server.url, headers={"mcp-session-id": first})
        assert deleted.status_code == 200
        await server.wait_children(1)
        await initialize(http, server.url)  # room again


async def test_idle_sessions_are_reaped() -> None:
    async with serving(fake_server(), "--share", "session", "--http-idle-timeout", "1s") as server, _client() as http:
        session = await initialize(http, server.url)
        await server.wait_children(1)
        await server.wait_children(0)  # reaped: its upstream is stopped
        response = await http.post(
            server.url,
            content=body({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            headers={**HEADERS, "mcp-session-id": session},
        )
        assert response.status_code == 404


async def test_wildcard_bind_serves_own_names_only() -> None:
    async with serving(fake_server(), "--allow-host", "mcp.internal.example", bind="0.0.0.0:0") as server, _client() as http:
        assert any("reachable from other machines" in line for line in server.log)
        assert any("NO AUTHENTICATION" in line for line in server.log)
        ok = await http.post(server.url, content=body(INIT), headers=HEADERS)  # Host: 127.0.0.1:port
        assert ok.status_code == 200
        foreign = await http.post(server.url, content=body(INIT), headers={**HEADERS, "host": f"evil.example:{server.port}"})
        assert foreign.status_code == 421
        _error(foreign)
        allowed = await http.post(
            server.url, content=body(INIT), headers={**HEADERS, "host": f"mcp.internal.example:{server.port}"}
        )
        assert allowed.status_code == 200


async def test_bearer_token(tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    async with serving(fake_server(), "--share", "session", "--auth-token-file", str(token)) as server, _client() as http:
        for given in (None, "Bearer wrong", "Basic s3cret-token", "Bearer s3cret-token-and-more"):
            headers = HEADERS if given is None else {**HEADERS, "authorization": given}
            response = await http.post(server.url, content=body(INIT), headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
        assert server.children() == []
        good = await http.post(server.url, content=body(INIT), headers={**HEADERS, "authorization": "Bearer s3cret-token"})
        assert good.status_code == 200


async def test_shared_upstream_starts_once_and_refusals_add_none() -> None:
    """share: auto starts one upstream at launch; sessions and refused requests add none."""
    async with serving(fake_server()) as server, _client() as http:
        await server.wait_children(1)
        for _ in range(3):
            await initialize(http, server.url)
        await http.post(server.url, content=body(INIT), headers={"content-type": "text/plain", "accept": "*/*"})
        with anyio.move_on_after(0.3):
            await server.wait_children(2)
        assert len(server.children()) == 1


async def _raw(port: int, data: bytes) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        received = b""
        with anyio.fail_after(10):
            try:
                while True:
                    received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                pass
        return received


async def test_malformed_and_oversized_heads_are_refused_and_closed() -> None:
    async with serving(fake_server(), "--share", "session") as server:
        garbage = await _raw(server.port, b"NOT HTTP AT ALL\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400")
        huge = await _raw(server.port, b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        assert huge.startswith(b"HTTP/1.1 400") or huge == b""
        assert server.children() == []


async def test_stopping_the_server_stops_every_upstream() -> None:
    async with serving(fake_server(), "--share", "session") as server, _client() as http:
        await initialize(http, server.url)
        await server.wait_children(1)
        upstream = server.children()[0]

    def running(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    with anyio.fail_after(20):  # SIGTERM: sessions closed, their upstreams stopped, not orphaned
        while running(upstream):
            await anyio.sleep(0.05)


async def test_a_session_cannot_resume_another_sessions_stream() -> None:
    from http_helpers import events

    async with serving(fake_server()) as server, _client() as http:
        owner, other = [await initialize(http, server.url) for _ in range(2)]
        request = body(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "slow", "arguments": {"seconds": 1.5}, "_meta": {"progressToken": "x"}},
            }
        )
        first: list[dict[str, str]] = []
        async with http.stream("POST", server.url, content=request, headers={**HEADERS, "mcp-session-id": owner}) as response:
            text = ""
            async for chunk in response.aiter_text():
                text += chunk
                first = [e for e in events(text.rsplit("\n\n", 1)[0]) if e.get("data")]
                if first:
                    break  # dropped after the first progress event: resumable by its owner only
        stolen = await http.get(
            server.url, headers={"accept": "text/event-stream", "mcp-session-id": other, "last-event-id": first[0]["id"]}
        )
        assert stolen.status_code == 404
        _error(stolen)
        resumed = await http.get(
            server.url, headers={"accept": "text/event-stream", "mcp-session-id": owner, "last-event-id": first[0]["id"]}
        )
        assert resumed.status_code == 200 and '"id":3' in resumed.text.replace(" ", "")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--share", "everyone"], "--share expects one of auto, session, shared"),
        (["--auth-token-file", "EMPTY"], "the token file is empty"),
        (["--http-max-sessions", "0"], "must be at least 1"),
    ],
)
def test_bad_http_options_stop_signoff_with_one_line(tmp_path, options: list[str], expected: str) -> None:
    import subprocess
    import sys

    empty = tmp_path / "empty"
    empty.write_text("")
    options = [str(empty) if o == "EMPTY" else o for o in options]
    done = subprocess.run(
        [sys.executable, "-m", "signoff", "run", "--http", "127.0.0.1:0", *options, "--", *fake_server()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr


async def test_unanswered_requests_per_session_are_capped() -> None:
    async with serving(fake_server()) as server, _client() as http:
        session = await initialize(http, server.url)
        flood = [
            {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "hang", "arguments": {}}} for i in range(257)
        ]
        response = await http.post(server.url, content=json.dumps(flood), headers={**HEADERS, "mcp-session-id": session})
        assert response.status_code == 429
        assert "256 requests" in _error(response)["message"]
        ok = await http.post(
            server.url,
            content=body(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": "still here"}},
                }
            ),
            headers={**HEADERS, "mcp-session-id": session},
        )
        assert ok.json()["result"]["content"][0]["text"] == "still here"


SCRIPTED_SERVER = """
import json, sys
mode = sys.argv[1]
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    if msg.get("method") == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": mode, "version": "1"}}
    elif msg.get("method") == "tools/list":
        if mode == "cr":  # a notification first (so the answer goes out as SSE) whose JSON whitespace
            # holds bare CRs: valid JSON, but each CR ends a line for an SSE parser
            sys.stdout.write('{"jsonrpc":"2.0",\\r"method":"notifications/message",\\r"params":{"level":"info","data":"x"}}\\n')
        result = {"tools": []}
    else:  # any other request: answer with the very line received
        result = {"messages": [{"role": "user", "content": {"type": "text", "text": line.strip()}}]}
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"""


def scripted(tmp_path, mode: str) -> list[str]:
    import sys

    script = tmp_path / "scripted_server.py"
    script.write_text(SCRIPTED_SERVER)
    return [sys.executable, str(script), mode]


async def test_upstream_receives_what_signoff_parsed_not_the_raw_body(tmp_path) -> None:
    """A duplicate key reads differently to different parsers (first wins in some, last in
    others): the upstream must get the one reading signoff judged, never the client's bytes."""
    async with serving(scripted(tmp_path, "echo-line"), "--share", "session") as server, _client() as http:
        session = await initialize(http, server.url)
        headers = {**HEADERS, "mcp-session-id": session}
        sneaky = '{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"first","name":"second"}}'
        refused = await http.post(server.url, content=sneaky, headers=headers)
        assert refused.status_code == 400 and refused.json()["id"] == 4  # duplicate keys: refused, as over stdio
        escaped = '{"jsonrpc":"2.0","id":5,"method":"prompts/get","params":{"name":"\\u0066irst"}}'
        answer = await http.post(server.url, content=escaped, headers=headers)
        line = answer.json()["result"]["messages"][0]["content"]["text"]  # the line the upstream got
        assert "\\u0066" not in line and json.loads(line)["params"]["name"] == "first"


async def test_approval_page_on_all_interfaces_answers_to_this_machines_addresses() -> None:
    """`signoff ui --host 0.0.0.0` used to refuse (421) every request naming the machine's own IP;
    other Host names (DNS rebinding) are still refused. Through the real CLI, which passes the names."""
    import subprocess
    import sys

    import httpx2
    from anyio.streams.buffered import BufferedByteReceiveStream

    from conftest import free_port
    from signoff.serve.http_guard import own_names

    ours = sorted(n for n in own_names() if n not in ("127.0.0.1", "::1", "localhost"))
    assert ours, "this machine has no address besides loopback"
    port = free_port()
    proc = await anyio.open_process(
        [sys.executable, "-m", "signoff", "ui", "--host", "0.0.0.0", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        reader = BufferedByteReceiveStream(proc.stderr)
        with anyio.fail_after(30):
            while b"approval page" not in await reader.receive_until(b"\n", 1 << 16):
                pass
            while True:  # printed just before uvicorn binds
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.05)
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for name in ours:
                shown = f"[{name}]" if ":" in name else name
                answer = await http.get("/api/queue", headers={"Host": f"{shown}:{port}"})
                assert answer.status_code != 421, (name, answer.status_code)
            assert (await http.get("/api/queue", headers={"Host": f"evil.example:{port}"})).status_code == 421
            assert (await http.get("/api/queue", headers={"Host": f"{ours[0]}:9999"})).status_code == 421
    finally:
        proc.terminate()
        with anyio.fail_after(10):
            await proc.wait()


async def test_upstream_cannot_break_sse_framing(tmp_path) -> None:
    from http_helpers import events

    async with serving(scripted(tmp_path, "cr"), "--share", "session") as server, _client() as http:
        session = await initialize(http, server.url)
        answer = await http.post(
            server.url,
            content=body({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            headers={**HEADERS, "mcp-session-id": session},
        )
        assert "\r" not in answer.text, answer.text
        frames = [json.loads(e["data"]) for e in events(answer.text) if e.get("data")]  # each event whole
        assert frames[-1]["id"] == 2  # (signoff's own tools/list prefetch may add a second log line)
        assert {f.get("method") for f in frames[:-1]} == {"notifications/message"}


async def test_stateless_clients_never_see_each_others_progress() -> None:
    """2026-07-28 requests from different clients share one relay: the same progress token in
    two of them must still reach only its own client."""
    from http_helpers import events

    modern = {**HEADERS, "mcp-protocol-version": "2026-07-28"}
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    async with serving(fake_server()) as server, _client() as http:
        results: dict[str, list] = {}

        async def run(who: str) -> None:
            request = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "slow", "arguments": {"seconds": 0.6}, "_meta": {**envelope, "progressToken": "same"}},
            }
            answer = await http.post(server.url, content=body(request), headers=modern)
            results[who] = [json.loads(e["data"]) for e in events(answer.text) if e.get("data")]

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "a")
                tg.start_soon(run, "b")
        for who, frames in results.items():
            progress = [f["params"] for f in frames if f.get("method") == "notifications/progress"]
            assert [p["progress"] for p in progress] == [1, 2, 3], who
            assert {p["progressToken"] for p in progress} == {"same"}
            assert frames[-1]["id"] == 1 and "result" in frames[-1]
