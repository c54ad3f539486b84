"""Team mode with real processes: `signoff run` proxies spoken to over raw stdio JSON-RPC, one
`signoff ui` page, and people deciding through the page's HTTP API (password + TOTP sign-in,
CSRF) or `signoff approve/deny --token`. Shared by tests/test_team_multihost.py and
benchmarks/bench_team.py (which times what the test only checks)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx2
import pyotp

BOUND = 300.0
"""The longest any single wait here lasts (a bound, not a timing claim)."""


class StdioProxy:
    """One `signoff run` over stdio with its own environment; answers are timestamped by a reader thread."""

    def __init__(self, env: Mapping[str, str], policy: Path, *, machine: str, agent: str, log: Path | None = None):
        self.machine, self.agent = machine, agent
        with open(log or os.devnull, "wb") as stderr:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "signoff",
                    "run",
                    "--policy",
                    str(policy),
                    "--machine",
                    machine,
                    "--agent",
                    agent,
                    "--",
                    sys.executable,
                    "-m",
                    "signoff.testing",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=dict(env),
                bufsize=0,
            )
        self.answers: dict[int, tuple[float, dict[str, Any]]] = {}
        self.wall: dict[int, float] = {}
        """When each answer arrived, by the wall clock (decisions record `decided_at` by it)."""
        self.duplicates: list[int] = []
        self.lock = threading.Lock()
        self._send_lock = threading.Lock()
        self.send(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": agent, "version": "1"}},
            }
        )
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        with self._send_lock:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")

    def call(self, request_id: int, tool: str, arguments: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if "id" in message and ("result" in message or "error" in message):
                with self.lock:
                    if message["id"] in self.answers:
                        self.duplicates.append(message["id"])
                    self.answers[message["id"]] = (time.perf_counter(), message)
                    self.wall[message["id"]] = time.time()

    def initialized(self, within: float = BOUND) -> bool:
        if not self.wait_for([0], within):
            return False
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return True

    def wait_for(self, ids: list[int], within: float = BOUND) -> bool:
        deadline = time.monotonic() + within
        while True:
            with self.lock:
                if all(i in self.answers for i in ids):
                    return True
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                return False
            time.sleep(0.002)

    def answer(self, request_id: int) -> dict[str, Any]:
        return self.answers[request_id][1]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def answer_text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("result") or message.get("error"))


def start_page(env: Mapping[str, str], port: int, log: Path) -> subprocess.Popen:
    """`signoff ui --team` on 127.0.0.1:port, up once /signin answers (bounded)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "signoff", "ui", "--team", "--port", str(port), "--logged"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=dict(env),
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"signoff ui exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/signin", timeout=5).status_code == 200:
                return proc
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("signoff ui did not answer within 120 s")


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" content="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


class PagePerson:
    """A person signed in to the page (password + the current TOTP code), deciding through its API."""

    def __init__(self, port: int, name: str, password: str, totp_secret: str):
        self.name = name
        self.origin = f"http://127.0.0.1:{port}"
        self.http = httpx2.Client(base_url=self.origin, timeout=60, follow_redirects=False)
        signin = self.http.post(
            "/signin",
            content=json.dumps({"name": name, "password": password, "totp": pyotp.TOTP(totp_secret).now()}),
            headers=self._headers(_csrf(self.http.get("/signin").text)),
        )
        assert signin.status_code == 200, signin.text
        self.csrf = _csrf(self.http.get("/").text)

    def _headers(self, csrf: str) -> dict[str, str]:
        return {"Content-Type": "application/json", "Origin": self.origin, "X-CSRF-Token": csrf}

    def post(self, path: str, body: dict[str, Any]) -> httpx2.Response:
        answer = self.http.post(path, content=json.dumps(body), headers=self._headers(self.csrf))
        self.csrf = answer.json().get("csrf") or self.csrf  # each post spends its token and gets the next
        return answer

    def pending(self) -> list[str]:
        queue = self.http.get("/api/queue")
        assert queue.status_code == 200, queue.text
        return [held["id"] for held in queue.json()["pending"]]

    def decide(self, held_id: str, approve: bool) -> bool:
        """True if this person's decision won; False if another's did first (409)."""
        answer = self.post("/api/decide", {"id": held_id, "approve": approve, "reason": f"{self.name} decided"})
        if answer.status_code == 409:
            return False
        assert answer.status_code == 200 and answer.json()["by"] == f"user:{self.name}", answer.text
        return True

    def kill(self, reason: str) -> None:
        answer = self.post("/api/kill", {"on": True, "reason": reason})
        assert answer.status_code == 200 and answer.json()["kill"]["on"], answer.text


class CliPerson:
    """A person deciding with `signoff pending --json` and `signoff approve/deny --token` (subprocesses)."""

    def __init__(self, env: Mapping[str, str], name: str, token: str):
        self.name, self.env = name, {**env, "SIGNOFF_TOKEN": ""}
        self.token = token

    def _signoff(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "signoff", *args], capture_output=True, text=True, env=self.env, timeout=BOUND, check=False
        )

    def pending(self) -> list[str]:
        listed = self._signoff("pending", "--json")
        assert listed.returncode == 0, listed.stderr
        return [held["id"] for held in json.loads(listed.stdout)]

    def decide(self, held_id: str, approve: bool) -> bool:
        done = self._signoff("approve" if approve else "deny", held_id, "--token", self.token, "--reason", f"{self.name} decided")
        if done.returncode == 2:  # already decided: another person was first
            return False
        assert done.returncode == 0 and done.stdout.startswith(("approved ", "denied ")), done.stdout + done.stderr
        return True


def verdict(held_id: str) -> bool:
    """Approve or deny, fixed per call (so a retried decision is the same), ~80% approvals."""
    return int(held_id.encode().hex(), 16) % 5 != 0


def race(
    person: Any,
    stop: threading.Event,
    won: dict[str, tuple[str, float]],
    lock: threading.Lock,
    started: threading.Event,
    *,
    newest_first: bool = False,
    seed: int = 0,
    after: threading.Event | None = None,
) -> None:
    """Decide whatever is pending until `stop`, recording the calls this person won (and when);
    with `after`, start once that is set (the slowest racer goes first, so everyone takes part)."""
    rng = random.Random(seed)
    while after is not None and not after.is_set() and not stop.is_set():
        after.wait(0.05)
    while not stop.is_set():
        ids = person.pending()
        if newest_first:
            ids.reverse()
        else:
            rng.shuffle(ids)
        for held_id in ids:
            if stop.is_set():
                return
            if person.decide(held_id, verdict(held_id)):
                with lock:
                    won[held_id] = (person.name, time.perf_counter())
                    started.set()
        if not ids:
            stop.wait(0.02)


def run_racers(
    people: list[tuple[Any, dict[str, Any]]], done: Callable[[], bool], within: float = BOUND
) -> tuple[dict[str, tuple[str, float]], list[BaseException]]:
    """Run `race` for each (person, options) on its own thread until `done()` (bounded); the
    winners and any failure a thread hit. Options: those of `race`, and `first=True`: the others
    start once this person has decided one call."""
    won: dict[str, tuple[str, float]] = {}
    lock, stop, errors = threading.Lock(), threading.Event(), []

    started = threading.Event()
    if not any(options.get("first") for _, options in people):
        started.set()

    def guarded(person: Any, options: dict[str, Any]) -> None:
        first = options.pop("first", False)
        try:
            race(person, stop, won, lock, started, after=None if first else started, **options)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, who fails the test with it
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=guarded, args=pair, daemon=True) for pair in people]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + within
    while not done() and not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for thread in threads:
        thread.join(BOUND)
    return won, errors


def proxy_env(base: Mapping[str, str], home: Path, store: str | None) -> dict[str, str]:
    env = {**base, "SIGNOFF_HOME": str(home), "SIGNOFF_LOG_LEVEL": "warning"}
    env.pop("SIGNOFF_STORE", None)
    if store:
        env["SIGNOFF_STORE"] = store
    return env


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")} | {
        "PYTHONPATH": os.environ.get("PYTHONPATH", "")
    }
