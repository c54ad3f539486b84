"""`signoff run --http` as a real process, spoken to with raw HTTP (httpx2): shared by the HTTP tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            found.append(int(entry.name))
    return found


@dataclass
class Served:
    url: str
    port: int
    pid: int
    log: list[str]

    def children(self) -> list[int]:
        return children(self.pid)

    async def wait_children(self, count: int) -> None:
        """Poll (bounded) until the server has exactly `count` child processes."""
        with anyio.fail_after(20):
            while len(self.children()) != count:
                await anyio.sleep(0.05)


@asynccontextmanager
async def serving(
    command: list[str],
    *options: str,
    bind: str = "127.0.0.1:0",
    env: dict[str, str] | None = None,
    python_options: tuple[str, ...] = (),
) -> AsyncIterator[Served]:
    """`signoff run --http BIND [options] -- command` (no `--` for an empty command, e.g. with
    --config); yields once it listens, stops it after."""
    proc = await anyio.open_process(
        [
            sys.executable,
            *python_options,
            "-m",
            "signoff",
            "run",
            "--http",
            bind,
            *options,
            *(["--", *command] if command else []),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        reader = BufferedByteReceiveStream(proc.stderr)
        with anyio.fail_after(30):
            while not (
                match := re.search(r"at http://(\S+?):(\d+)/mcp", line := (await reader.receive_until(b"\n", 1 << 20)).decode())
            ):
                lines.append(line)
        lines.append(line)
        port = int(match.group(2))

        async def drain() -> None:
            try:
                while True:
                    lines.append((await reader.receive_until(b"\n", 1 << 20)).decode())
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            yield Served(f"http://127.0.0.1:{port}/mcp", port, proc.pid, lines)
            tg.cancel_scope.cancel()
    finally:
        proc.terminate()
        with anyio.fail_after(10):
            await proc.wait()


def body(message: dict[str, Any]) -> str:
    return json.dumps(message)


def events(text: str) -> list[dict[str, str]]:
    """Parse SSE text into events (dicts of field → value)."""
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                event[name] = value[1:] if value.startswith(" ") else value
        if event:
            found.append(event)
    return found


async def initialize(client: Any, url: str, **params: Any) -> str:
    """Open a session; returns its id."""
    init = {**INIT, "params": {**INIT["params"], **params}}
    response = await client.post(url, content=body(init), headers=HEADERS)
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    note = await client.post(
        url,
        content=body({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        headers={**HEADERS, "mcp-session-id": session},
    )
    assert note.status_code == 202
    return session
