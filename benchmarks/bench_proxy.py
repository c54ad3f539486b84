"""Added latency of signoff per un-held tools/call over stdio, and start-up time.

Prints a table: direct to a minimal upstream vs through `signoff run` (`--policy none`, and with a
policy preset when one is available). A raw JSON-RPC client is used so that the client's own
cost does not hide the proxy's. Usage: python benchmarks/bench_proxy.py [--calls N] [--smoke]
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
UPSTREAM = [sys.executable, str(HERE / "echo_server.py")]


def through_signoff(*options: str) -> list[str]:
    return [sys.executable, "-m", "signoff", "run", *options, "--", *UPSTREAM]


class RawClient:
    def __init__(self, command: list[str]):
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        self.next_id = 0

    def request(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        frame = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            frame["params"] = params
        self.proc.stdin.write(json.dumps(frame).encode() + b"\n")
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{method}: the server closed stdout")
            message = json.loads(line)
            if message.get("id") == self.next_id:
                return message

    def initialize(self) -> None:
        self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
        self.proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def latency(command: list[str], calls: int) -> list[float]:
    client = RawClient(command)
    try:
        client.initialize()
        client.request("tools/list")
        for _ in range(min(200, calls)):  # warm-up
            client.request("tools/call", {"name": "echo", "arguments": {"n": 1}})
        samples = []
        for i in range(calls):
            start = time.perf_counter()
            client.request("tools/call", {"name": "echo", "arguments": {"n": i, "path": "/tmp/x"}})
            samples.append((time.perf_counter() - start) * 1000)
        return samples
    finally:
        client.close()


def startup(command: list[str], runs: int) -> float:
    """Median time from process start to the first tools/list answer (ms)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        client = RawClient(command)
        client.initialize()
        client.request("tools/list")
        times.append((time.perf_counter() - start) * 1000)
        client.close()
    return statistics.median(times)


def compile_signoff() -> None:
    """Measure start-up as installed: pip writes the package's bytecode at install, whereas a
    source tree run with PYTHONDONTWRITEBYTECODE=1 (as on the project machine) recompiles every
    changed module at every start, ~100 ms more."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("signoff")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(folder, quiet=1)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="a few iterations: checks that it runs")
    args = parser.parse_args()
    calls, runs = (50, 2) if args.smoke else (args.calls, 10)
    compile_signoff()
    os.environ.setdefault("SIGNOFF_HOME", tempfile.mkdtemp(prefix="signoff-bench-"))
    os.environ.setdefault("SIGNOFF_LOG_LEVEL", "warning")
    rows = [("direct", UPSTREAM), ("signoff --policy none", through_signoff("--policy", "none"))]
    try:
        import signoff.policy.engine  # noqa: F401

        rows.append(("signoff --policy balanced", through_signoff("--policy", "balanced")))
    except ImportError:
        pass
    base = None
    print(f"{'path':<28}{'mean ms':>9}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'added p99':>11}{'start-up ms':>13}")
    for label, command in rows:
        samples = latency(command, calls)
        mean, p50, p99 = statistics.fmean(samples), pct(samples, 0.5), pct(samples, 0.99)
        if base is None:
            base = (p50, p99)
        up = startup(command, runs)
        print(f"{label:<28}{mean:>9.3f}{p50:>9.3f}{p99:>9.3f}{p50 - base[0]:>11.3f}{p99 - base[1]:>11.3f}{up:>13.0f}")
    print(f"\n{calls} sequential calls per row; start-up = median of {runs} runs to the first tools/list answer.")


if __name__ == "__main__":
    main()
