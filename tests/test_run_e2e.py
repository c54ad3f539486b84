"""`signoff run` as a real process: stdio purity, failures seen by a real SDK client, HTTP serving."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import connect, everything, fake_server, through_signoff

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def frame(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"


async def test_stdout_carries_only_json_rpc(signoff_home: Path) -> None:
    """Everything on stdout is a JSON-RPC frame, even when the client sends garbage."""
    command = through_signoff(fake_server())
    async with await anyio.open_process(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdin and proc.stdout
        await proc.stdin.send(
            frame(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "raw", "version": "0"},
                    },
                }
            )
        )
        await proc.stdin.send(b"garbage that is not json\n")
        await proc.stdin.send(frame({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        await proc.stdin.send(
            frame({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}})
        )
        reader = BufferedByteReceiveStream(proc.stdout)
        seen: dict = {}
        with anyio.fail_after(30):
            while len(seen) < 3:
                line = await reader.receive_until(b"\n", 1 << 20)
                message = json.loads(line)  # raises if anything but JSON reached stdout
                assert message["jsonrpc"] == "2.0"
                seen[message.get("id")] = message
        await proc.stdin.aclose()
        with anyio.fail_after(10):
            assert await proc.wait() == 0
    assert seen[None]["error"]["code"] == -32700
    assert seen[2]["result"]["content"][0]["text"] == "x"
    log_text = (signoff_home / "signoff.log").read_text()
    assert "started upstream signoff-testing" in log_text


async def test_crash_and_restart_seen_by_a_real_client() -> None:
    async with connect(through_signoff(fake_server())) as client:
        crashed = await client.call_tool("crash", {})
        assert crashed.is_error
        assert "crashing on purpose" in crashed.content[0].text
        again = await client.call_tool("echo", {"text": "restarted"})
        assert not again.is_error and again.content[0].text == "restarted"


async def test_missing_server_command_fails_the_handshake_clearly() -> None:
    with pytest.raises(BaseExceptionGroup) as caught:
        async with connect(through_signoff(["no-such-server-binary"])):
            pass
    errors = []
    pending: list[BaseException] = [caught.value]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        elif isinstance(exc, MCPError):
            errors.append(str(exc))
    assert any("'no-such-server-binary' not found" in e for e in errors), errors


async def test_bad_arguments_exit_2_with_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "signoff", "run"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "nothing to wrap" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["version"]])
def test_help_is_useful(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "signoff", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    if args == ["run", "--help"]:
        for option in ("--config", "--policy", "--http", "--name", "--timeout"):
            assert option in done.stdout
    elif args == ["--help"]:
        assert "run" in done.stdout


@asynccontextmanager
async def serving_http(command: list[str]) -> AsyncIterator[str]:
    """`signoff run --http 127.0.0.1:0 -- command`; yields its URL once it listens, stops it after."""
    proc = await anyio.open_process(
        [sys.executable, "-m", "signoff", "run", "--http", "127.0.0.1:0", "--", *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        reader = BufferedByteReceiveStream(proc.stderr)
        with anyio.fail_after(30):
            while not (match := re.search(r"at (http://\S+/mcp)", (await reader.receive_until(b"\n", 1 << 20)).decode())):
                pass
        yield match.group(1)
    finally:
        proc.terminate()
        with anyio.fail_after(10):
            await proc.wait()


async def _elicit(context, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": "over http"})


async def test_streamable_http_serving() -> None:
    async with serving_http(fake_server()) as url:
        async with streamable_http_client(url) as (read, write):
            async with ClientSession(read, write, elicitation_callback=_elicit) as client:
                with anyio.fail_after(30):
                    await client.initialize()
                    tools = await client.list_tools()
                    assert "echo" in [t.name for t in tools.tools]
                    echoed = await client.call_tool("echo", {"text": "via http"})
                    assert echoed.content[0].text == "via http"
                    asked = await client.call_tool("ask_user", {"question": "?"})
                    assert "over http" in asked.content[0].text
                    steps: list[float] = []

                    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                        steps.append(progress)

                    await client.call_tool("slow", {"seconds": 0.1}, progress_callback=on_progress)
                    assert steps == [1, 2, 3]


async def test_streamable_http_rejects_foreign_host_header() -> None:
    import httpx2

    async with serving_http(fake_server()) as url:
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                url,
                headers={
                    "Host": "evil.example:80",
                    "Accept": "application/json, text/event-stream",
                    "Content-Type": "application/json",
                },
                content=json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2025-11-25",
                            "capabilities": {},
                            "clientInfo": {"name": "x", "version": "0"},
                        },
                    }
                ),
            )
        assert response.status_code in (403, 421)


async def test_http_parity_with_everything_sampling() -> None:
    async def sampling(context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="sampled"), model="m")

    async with serving_http(everything()) as url:
        async with streamable_http_client(url) as (read, write):
            async with ClientSession(read, write, sampling_callback=sampling) as client:
                with anyio.fail_after(60):
                    await client.initialize()
                    result = await client.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 5})
                    assert "sampled" in repr(result.content)


def test_python_dash_m_and_console_script_agree() -> None:
    a = subprocess.run([sys.executable, "-m", "signoff", "version"], capture_output=True, text=True, timeout=60)
    exe = Path(sys.executable).parent / "signoff"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    b = subprocess.run([str(exe), "version"], capture_output=True, text=True, timeout=60, env=os.environ)
    assert a.stdout == b.stdout and a.returncode == b.returncode == 0


async def test_stateless_2026_client_over_http() -> None:
    """A 2026-07-28 client POSTs self-contained requests; elicitation becomes an input round."""
    from mcp import Client

    async with serving_http(fake_server()) as url:
        async with Client(url, mode="2026-07-28", elicitation_callback=_elicit) as client:
            with anyio.fail_after(30):
                assert client.protocol_version == "2026-07-28"
                assert "echo" in [t.name for t in (await client.list_tools()).tools]
                echoed = await client.call_tool("echo", {"text": "stateless"})
                assert echoed.content[0].text == "stateless"
                asked = await client.call_tool("ask_user", {"question": "?"})
                assert "over http" in asked.content[0].text


async def test_http_sessions_can_end_and_the_server_keeps_serving() -> None:
    """A client ending its session (DELETE /mcp) must not stop the server for the next one."""
    async with serving_http(fake_server()) as url:
        for round_ in range(3):
            async with streamable_http_client(url) as (read, write):  # terminates with DELETE on exit
                async with ClientSession(read, write) as client:
                    with anyio.fail_after(30):
                        await client.initialize()
                        echoed = await client.call_tool("echo", {"text": f"session {round_}"})
                        assert echoed.content[0].text == f"session {round_}"
