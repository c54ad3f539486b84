"""Held calls driven through real `signoff run` processes: a raw JSON-RPC client, bounded waits,
and the CLI run as a person runs it (shared by the liveness and expiry tests)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from conftest import fake_server
from signoff.approvals.broker import Broker
from signoff.approvals.store import HeldCall, open_store

POLICY = """\
hitl_policies:
  - tool: "*.echo"
    reason: "echo needs approval"
    hold: wait
"""
WAIT = 30.0


class RawClient:
    """A minimal MCP client over a `signoff run` subprocess's stdin/stdout."""

    def __init__(self, tmp_path: Path, policy: str = POLICY, *, client: str = "raw-test-client", server: tuple[str, ...] = ()):
        path = tmp_path / "policy.yaml"
        path.write_text(policy)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "signoff", "run", "--policy", str(path), "--", *fake_server(*server)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[dict[str, Any]] = []
        self._got = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.send(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": client, "version": "1"}},
            }
        )
        self.answer(0)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._got:
                self.lines.append(json.loads(line))
                self._got.notify_all()

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def call(self, request_id: int, tool: str, arguments: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})

    def answer(self, request_id: int, timeout: float = WAIT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._got:
            while True:
                for message in self.lines:
                    if message.get("id") == request_id and ("result" in message or "error" in message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer to request {request_id} within {timeout}s")
                self._got.wait(left)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)


def wait_for(predicate, what: str, timeout: float = WAIT):
    """Poll `predicate` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not happen within {timeout}s")


def held_call(broker: Broker | None = None) -> HeldCall:
    broker = broker or Broker()
    return wait_for(lambda: next(iter(broker.store.list_held("pending")), None), "a held call")


def signoff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "signoff", *args], capture_output=True, text=True, timeout=WAIT)


def decisions(held_id: str) -> list[str]:
    return [row["decision"] for row in open_store().audit_rows() if row["held_id"] == held_id]
