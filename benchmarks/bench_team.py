"""Team mode on one PostgreSQL server: many proxies (each its own SIGNOFF_HOME, as on separate
machines), held calls decided concurrently by several approvers, and the kill switch.

1. PROXIES `signoff run` processes each make CALLS/PROXIES held calls at once; APPROVERS threads
   (each its own store, so its own connections) race to decide every pending call. Checked:
   every call answered exactly once, every held row decided once, the audit chain verifies.
   Measured: from the winning decision's commit to the result at the client (p50/p99).
2. One call held per proxy, then `kill` from another store: time until every client has its answer,
   and until a new call on every proxy is refused.
Usage: python benchmarks/bench_team.py [--proxies 20] [--calls 500] [--approvers 3] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Proxy:
    """One `signoff run` over stdio, its own SIGNOFF_HOME; answers are timestamped by a reader thread."""

    def __init__(self, n: int, policy: Path, url: str):
        env = {**os.environ, "SIGNOFF_HOME": tempfile.mkdtemp(prefix=f"signoff-team-{n}-"), "SIGNOFF_STORE": url,
               "SIGNOFF_LOG_LEVEL": "warning"}
        self.proc = subprocess.Popen([sys.executable, "-m", "signoff", "run", "--policy", str(policy), "--",
                                      sys.executable, "-m", "signoff.testing"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0)
        self.answers: dict[int, tuple[float, dict]] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        with threading.Lock():
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if "id" in message and ("result" in message or "error" in message):
                with self.lock:
                    if message["id"] in self.answers:
                        self.duplicates += 1
                    self.answers[message["id"]] = (time.perf_counter(), message)

    def wait_for(self, ids: list[int], within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                if all(i in self.answers for i in ids):
                    return True
            time.sleep(0.002)
        return False

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def approver(name: str, stop: threading.Event, decided: dict[str, float], lock: threading.Lock, lost: list[int]) -> None:
    from signoff.approvals.broker import Broker
    from signoff.approvals.store_pg import PgStore
    from signoff.errors import AlreadyDecidedError

    broker = Broker(PgStore(os.environ["SIGNOFF_STORE"]))
    rng = random.Random(name)
    while not stop.is_set():
        calls = broker.store.list_held("pending")
        rng.shuffle(calls)
        for held in calls:
            try:
                broker.decide(held.id, rng.random() < 0.8, by=name, channel="cli")
                with lock:
                    decided[held.id] = time.perf_counter()
            except AlreadyDecidedError:
                lost[0] += 1
        if not calls:
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proxies", type=int, default=20)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--approvers", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.proxies, args.calls, args.approvers = 3, 30, 2
    from pg_server import PgServer, bindir

    found = bindir()
    if found is None:
        raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl): install Debian's `postgresql` package")
    server = PgServer(found).init().start()
    os.environ["SIGNOFF_STORE"] = url = server.url()
    os.environ["SIGNOFF_HOME"] = tempfile.mkdtemp(prefix="signoff-team-")
    policy = Path(tempfile.mkdtemp()) / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*.echo'\n    timeout: 10m\n")
    proxies: list[Proxy] = []
    try:
        started = time.perf_counter()
        proxies = [Proxy(n, policy, url) for n in range(args.proxies)]
        for proxy in proxies:
            if not proxy.wait_for([0], 120):
                raise SystemExit("a proxy did not start")
            proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        print(f"{args.proxies} proxies up in {time.perf_counter() - started:.1f} s")
        ids: dict[int, list[int]] = {}
        texts: dict[str, tuple[int, int]] = {}
        per = args.calls // args.proxies
        for n, proxy in enumerate(proxies):
            ids[n] = list(range(1, per + 1))
            for i in ids[n]:
                texts[f"p{n}-{i}"] = (n, i)
                proxy.send({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"text": f"p{n}-{i}"}}})
        decided: dict[str, float] = {}
        lock, stop, lost = threading.Lock(), threading.Event(), [0]
        workers = [threading.Thread(target=approver, args=(f"approver{k}", stop, decided, lock, lost))
                   for k in range(args.approvers)]
        run_started = time.perf_counter()
        for worker in workers:
            worker.start()
        answered = all(proxy.wait_for(ids[n], 300) for n, proxy in enumerate(proxies))
        elapsed = time.perf_counter() - run_started
        stop.set()
        for worker in workers:
            worker.join(30)
        from signoff.approvals.audit import AuditLog
        from signoff.approvals.store import open_store

        store = open_store()
        rows = {h.id: h for h in store.list_held(None, limit=100_000)}
        latencies = []
        for held_id, at in decided.items():
            n, i = texts[rows[held_id].arguments["text"]]
            latencies.append((proxies[n].answers[i][0] - at) * 1000)
        total = per * args.proxies
        print(f"held calls: {total}, all answered: {answered}, duplicates: {sum(p.duplicates for p in proxies)}, "
              f"rows: {len(rows)}, decided once: {len(decided) == total}, lost races: {lost[0]}, "
              f"{total / elapsed:.0f} decisions/s")
        print(f"decision commit -> result at client: p50 {pct(latencies, .5):.1f} ms, p99 {pct(latencies, .99):.1f} ms, "
              f"max {max(latencies):.1f} ms")
        checked, problem = AuditLog(store).verify()
        print(f"audit verify: {checked} rows, {'OK' if problem is None else problem}")

        base = per + 1
        for n, proxy in enumerate(proxies):  # one held call each, then the kill switch from elsewhere
            proxy.send({"jsonrpc": "2.0", "id": base, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": f"k{n}"}}})
        deadline = time.monotonic() + 60
        while len(store.list_held("pending")) < args.proxies and time.monotonic() < deadline:
            time.sleep(0.01)
        from signoff.approvals.broker import Broker
        from signoff.approvals.store_pg import PgStore

        killer = Broker(PgStore(url))
        at = time.perf_counter()
        killer.kill("bench", by="carol")
        for proxy in proxies:
            proxy.wait_for([base], 30)
        held_out = max(p.answers[base][0] for p in proxies) - at
        refused_after = []
        for n, proxy in enumerate(proxies):  # allowed calls until one is refused (kill_state caches ≤ 100 ms)
            request = base + 1
            while True:
                proxy.send({"jsonrpc": "2.0", "id": request, "method": "tools/call",
                            "params": {"name": "cancelled_ids", "arguments": {}}})
                proxy.wait_for([request], 30)
                answer = proxy.answers[request]
                if "kill" in json.dumps(answer[1]):
                    refused_after.append(answer[0] - at)
                    break
                request += 1
        print(f"kill switch: every held call answered {held_out * 1000:.0f} ms after the kill; a new call refused "
              f"on every proxy within {max(refused_after) * 1000:.0f} ms (sequentially asked: an upper bound)")
        killer.resume(by="carol")
    finally:
        for proxy in proxies:
            proxy.close()
        server.remove()


if __name__ == "__main__":
    main()
