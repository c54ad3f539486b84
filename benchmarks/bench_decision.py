"""Decision latency and audit-write cost.

1. From a human's decision to the held call's result reaching the MCP client: measured from the
   moment the decision commits (an in-process `Broker.decide`, what `signoff approve` does after
   starting), and end to end from launching `signoff approve ID` as a separate process.
2. The cost of appending one hash-chained audit row (what every allowed call pays).
Usage: python benchmarks/bench_decision.py [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def audit_cost(rows: int) -> list[float]:
    from signoff.approvals.audit import entry
    from signoff.model import ToolCall
    from signoff.approvals.store import open_store

    store = open_store()
    call = ToolCall("fs", "write_file", {"path": "/tmp/x", "content": "y" * 200}, session="s", client="bench")
    samples = []
    for _ in range(rows):
        start = time.perf_counter()
        store.append_audit(entry(call, "allowed", by="policy", duration_ms=1.0, policy_hash="h" * 64))
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def decision_latency(rounds: int, *, via_cli: bool) -> list[float]:
    from signoff.approvals.broker import Broker

    policy = Path(tempfile.mkdtemp()) / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*.echo'\n")
    proc = subprocess.Popen([sys.executable, "-m", "signoff", "run", "--policy", str(policy), "--", sys.executable,
                             "-m", "signoff.testing"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, bufsize=0)
    assert proc.stdin and proc.stdout

    def send(message: dict) -> None:
        proc.stdin.write(json.dumps(message).encode() + b"\n")

    send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    proc.stdout.readline()
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    broker = Broker()
    samples = []
    try:
        for i in range(1, rounds + 1):
            send({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": str(i)}}})
            deadline = time.monotonic() + 30
            while not (pending := broker.pending()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the call was never held")
                time.sleep(0.005)
            start = time.perf_counter()
            if via_cli:
                subprocess.run([sys.executable, "-m", "signoff", "approve", pending[0].id], check=True,
                               capture_output=True, timeout=60)
            else:
                broker.decide(pending[0].id, True)
            while True:
                message = json.loads(proc.stdout.readline())
                if message.get("id") == i:
                    break
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    return samples


def postgres() -> object:
    """A throwaway PostgreSQL server (the tests' initdb + pg_ctl helper) as the store."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from pg_server import PgServer, bindir

    found = bindir()
    if found is None:
        raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl): install Debian's `postgresql` package")
    server = PgServer(found).init().start()
    os.environ["SIGNOFF_STORE"] = server.url()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: start a local server (team mode: decisions arrive by LISTEN/NOTIFY)")
    parser.add_argument("--rounds", type=int, help="held calls decided in-process (default 50)")
    args = parser.parse_args()
    os.environ["SIGNOFF_HOME"] = tempfile.mkdtemp(prefix="signoff-bench-")
    os.environ.setdefault("SIGNOFF_LOG_LEVEL", "warning")
    server = postgres() if args.store == "postgresql" else None
    try:
        run(args)
    finally:
        if server is not None:
            server.remove()  # type: ignore[attr-defined]


def run(args: argparse.Namespace) -> None:
    rows, rounds, cli_rounds = (50, 3, 1) if args.smoke else (2000, args.rounds or 50, 10)
    print(f"store: {args.store}")
    print(f"{'measure':<48}{'mean':>10}{'p50':>10}{'p99':>10}  unit")
    audit = audit_cost(rows)
    print(f"{'audit row append (' + str(rows) + ' rows)':<48}{statistics.fmean(audit):>10.1f}{pct(audit, .5):>10.1f}{pct(audit, .99):>10.1f}  µs")
    direct = decision_latency(rounds, via_cli=False)
    print(f"{'decision commit -> result at client (' + str(rounds) + ')':<48}{statistics.fmean(direct):>10.1f}{pct(direct, .5):>10.1f}{pct(direct, .99):>10.1f}  ms")
    cli = decision_latency(cli_rounds, via_cli=True)
    print(f"{'`signoff approve` launched -> result (' + str(cli_rounds) + ')':<48}{statistics.fmean(cli):>10.1f}{pct(cli, .5):>10.1f}{pct(cli, .99):>10.1f}  ms")


if __name__ == "__main__":
    main()
