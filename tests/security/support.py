"""Shared pieces of the attack tests: the naive upstream, a recording gate, a raw stdio client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from signoff.gate import Admission
from signoff.model import ToolCall
from signoff.relay.upstream import ServerSpec

HERE = Path(__file__).resolve().parent
NAIVE = HERE / "naive_server.py"
WAIT = 30


def naive_command(log: Path) -> list[str]:
    return [sys.executable, str(NAIVE), "--log", str(log)]


def naive_spec(log: Path, name: str = "naive") -> ServerSpec:
    command = naive_command(log)
    return ServerSpec(name=name, command=command[0], args=tuple(command[1:]))


def naive_log(log: Path) -> list[dict[str, Any]]:
    """Everything the naive server parsed, in order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def naive_ran(log: Path) -> list[str]:
    """The tools the naive server ran."""
    return [str(entry["ran"]) for entry in naive_log(log) if "ran" in entry]


class RecordingGate:
    """Allows every tool but `delete_file` (refused), and records every call it checked."""

    def __init__(self, refuse: str = "delete_file") -> None:
        self.refuse = refuse
        self.checked: list[ToolCall] = []
        self.refusals: list[tuple[ToolCall, str]] = []

    def check(self, call: ToolCall) -> Admission:
        self.checked.append(call)
        if call.tool == self.refuse:
            return Admission(False, "blocked by the test gate")
        return Admission(True)

    async def hold(self, call, admission, progress, client=None):  # pragma: no cover - never holds
        raise AssertionError("the recording gate never holds")

    def finished(self, call: ToolCall, admission: Admission, *, is_error: bool, error: str | None = None) -> None:
        return None

    async def client_answer(self, held_id: str, answer: dict[str, Any]) -> None:  # pragma: no cover
        return None

    def refused(self, call: ToolCall, reason: str) -> None:
        self.refusals.append((call, reason))

    def policy_hash(self) -> str:
        return "test"


async def barrier(client, request_id: str = "barrier") -> None:
    """Once the upstream answers this ping, it has read and logged everything sent before it."""
    await client.send({"jsonrpc": "2.0", "id": request_id, "method": "ping"})
    await client.wait_for(lambda m: m.get("id") == request_id)


class RawStdio:
    """A raw JSON-RPC client of a subprocess over stdio: writes bytes as given, reads lines."""

    def __init__(self, proc: anyio.abc.Process):
        self.proc = proc
        assert proc.stdout is not None
        self.reader = BufferedByteReceiveStream(proc.stdout)
        self.received: list[dict[str, Any]] = []

    async def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send(data)

    async def send(self, message: dict[str, Any]) -> None:
        await self.write(json.dumps(message).encode() + b"\n")

    async def wait_for(self, predicate, timeout: float = WAIT) -> dict[str, Any]:
        for message in self.received:
            if predicate(message):
                return message
        with anyio.fail_after(timeout):
            while True:
                line = await self.reader.receive_until(b"\n", 64 * 1024 * 1024)
                if not line.strip():
                    continue
                message = json.loads(line)
                self.received.append(message)
                if predicate(message):
                    return message

    async def request(self, request_id: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await self.wait_for(lambda m: m.get("id") == request_id and "method" not in m)

    async def initialize(self) -> None:
        await self.request(
            "init",
            "initialize",
            {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "attacker", "version": "1"}},
        )
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


class raw_process:
    """`async with raw_process(command) as client`: a subprocess spoken to in raw frames."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None):
        self.command = command
        self.env = {**os.environ, **(env or {})}

    async def __aenter__(self) -> RawStdio:
        self.proc = await anyio.open_process(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=self.env
        )
        return RawStdio(self.proc)

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.aclose()
        with anyio.move_on_after(10):
            await self.proc.wait()
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
