"""signoff side by side with the proxies a user might pick instead: latency, throughput, memory.

Three tables, one run, the same raw clients and the same minimal upstream for every row:
1. stdio latency: N sequential un-held `tools/call` to benchmarks/echo_server.py, directly and
   through signoff, the MCP SDK's naive low-level proxy (benchmarks/peers/sdk_proxy.py) and
   FastMCP's proxy; mean, p50, p99, ratio to direct, added ms.
2. streamable HTTP throughput: 32 concurrent callers (each its own MCP session, raw httpx2
   POSTs) against the echo upstream served directly over HTTP (benchmarks/peers/http_echo.py,
   the SDK's streamable HTTP server, with SSE answers and with JSON answers), through
   `signoff run --http` (one upstream shared by the sessions, the default for a client without a
   back channel, and `--share session`: one upstream per session), through mcp-proxy's server mode (it bridges HTTP to a stdio
   server; it cannot serve stdio in front of a stdio server) and FastMCP's proxy over HTTP.
3. memory and start-up: peak RSS (VmHWM of the proxy process itself, not its child) when idle
   after the first `tools/list` and after the load; start-up = median time from spawn to the
   first `tools/list` answer.

Peers live in their own virtualenvs (bash benchmarks/setup_peers.sh); a peer that is not
installed is skipped and the tables say so. Everything talks to 127.0.0.1 only; every wait is
bounded. Usage: python benchmarks/bench_peers.py [--calls N] [--callers N] [--per-caller N] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import json
import os
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
VENVS = HERE / ".venvs"
PY = sys.executable
ECHO = [PY, str(HERE / "echo_server.py")]
WAIT = 30.0  # longest wait for any one answer or readiness line (s)
SETUP_HINT = "not installed: run bash benchmarks/setup_peers.sh"
PROTOCOL = "2025-11-25"


def venv_python(peer: str) -> str | None:
    python = VENVS / peer / "bin" / "python"
    return str(python) if python.exists() and (VENVS / peer / ".installed").exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_peak_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of one process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def settled_rss_mb(pid: int, quiet: float = 1.0, within: float = 15.0) -> float | None:
    """Idle RSS: VmHWM once it has not grown for `quiet` seconds. A fixed pause after the first
    answer measured signoff before its policy had loaded (that happens in the background while
    the handshake is answered), which under-reported it by ~5 MB."""
    deadline = time.monotonic() + within
    last, since = rss_peak_mb(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = rss_peak_mb(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (its own threads, not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class StderrTail:
    """Drains a process's stderr on a thread (so a chatty peer never blocks), keeps the last lines."""

    def __init__(self, stream, ready: re.Pattern[str] | None = None):
        self.lines: collections.deque[str] = collections.deque(maxlen=30)
        self.ready = ready
        self.match: re.Match[str] | None = None
        self.matched = threading.Event()
        self.thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.thread.start()

    def _drain(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if self.ready is not None and not self.matched.is_set():
                match = self.ready.search(line)
                if match:
                    self.match = match
                    self.matched.set()
        self.matched.set()  # EOF: whoever waits stops waiting

    def text(self) -> str:
        return "\n".join(self.lines)


def stop(proc: subprocess.Popen, *, close_stdin: bool = False) -> None:
    """End a process this benchmark started (its own process group), bounded."""
    try:
        if close_stdin and proc.stdin:
            proc.stdin.close()
            proc.wait(timeout=5)
            return
    except (subprocess.TimeoutExpired, OSError):
        pass
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------- stdio: a raw JSON-RPC client


class RawStdioClient:
    """Newline-delimited JSON-RPC over a child's stdin/stdout; each answer waited for at most WAIT s."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env, start_new_session=True
        )
        self.stderr = StderrTail(self.proc.stderr)
        self.fd = self.proc.stdout.fileno()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)
        self.buffer = b""
        self.next_id = 0

    def _line(self, deadline: float) -> bytes:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise TimeoutError(f"no answer within {WAIT:.0f} s; stderr:\n{self.stderr.text()}")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise RuntimeError(f"the process closed stdout (exit {self.proc.poll()}); stderr:\n{self.stderr.text()}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def request(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        self.proc.stdin.write(json.dumps(frame(self.next_id, method, params)).encode() + b"\n")
        deadline = time.monotonic() + WAIT
        while True:
            line = self._line(deadline)
            if not line.strip():
                continue
            message = json.loads(line)
            if message.get("id") == self.next_id and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message

    def initialize(self) -> None:
        self.request("initialize", {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
        self.proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def close(self) -> None:
        self.selector.close()
        stop(self.proc, close_stdin=True)


@dataclass
class Row:
    label: str
    transport: str
    command: list[str] | None  # None: skipped
    note: str = ""
    env: dict[str, str] = field(default_factory=dict)
    ready: str | None = None  # HTTP: regex on stderr whose group 1 is the port
    fixed_port: bool = False  # HTTP: "{port}" in the command is a free port picked here (readiness = it accepts)
    # results
    samples: list[float] = field(default_factory=list)
    wall: float = 0.0
    startup: float | None = None
    rss_idle: float | None = None
    rss_load: float | None = None
    cpu_us: float | None = None  # the proxy process's own CPU per measured call
    error: str | None = None


def frame(request_id: int, method: str, params: dict | None) -> dict:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    return message if params is None else {**message, "params": params}


def call_params(i: int) -> dict:
    return {"name": "echo", "arguments": {"n": i, "path": "/tmp/x"}}


def per_call_us(before: float | None, after: float | None, calls: int) -> float | None:
    return None if before is None or after is None or not calls else (after - before) / calls * 1e6


def stdio_run(row: Row, env: dict[str, str], calls: int, startups: int) -> None:
    env = {**env, **row.env}
    times = []
    for _ in range(startups):
        start = time.perf_counter()
        client = RawStdioClient(row.command, env)
        try:
            client.initialize()
            client.request("tools/list")
            times.append((time.perf_counter() - start) * 1000)
        finally:
            client.close()
    row.startup = statistics.median(times)
    client = RawStdioClient(row.command, env)
    try:
        client.initialize()
        client.request("tools/list")
        row.rss_idle = settled_rss_mb(client.proc.pid)
        for i in range(min(200, calls)):  # warm-up
            client.request("tools/call", call_params(i))
        cpu = cpu_seconds(client.proc.pid)
        start = time.perf_counter()
        for i in range(calls):
            t0 = time.perf_counter()
            client.request("tools/call", call_params(i))
            row.samples.append((time.perf_counter() - t0) * 1000)
        row.wall = time.perf_counter() - start
        row.cpu_us = per_call_us(cpu, cpu_seconds(client.proc.pid), calls)
        row.rss_load = rss_peak_mb(client.proc.pid)
    finally:
        client.close()


# ---------------------------------------------------------------- HTTP: raw streamable HTTP callers


def _answer(response, request_id: int) -> dict:
    """The JSON-RPC answer in a POST's response: a JSON body or an SSE stream of messages."""
    if response.status_code >= 400:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("id") == request_id and "method" not in message:
                    return message
        raise RuntimeError(f"no answer to request {request_id} in the event stream: {response.text[:300]}")
    return response.json()


class HttpCaller:
    """One MCP session over streamable HTTP, spoken with raw POSTs."""

    def __init__(self, client, url: str):
        self.client, self.url = client, url
        self.headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        self.next_id = 0

    async def request(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        body = json.dumps(frame(self.next_id, method, params))
        response = await self.client.post(self.url, content=body, headers=self.headers)
        message = _answer(response, self.next_id)
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        if method == "initialize":
            session = response.headers.get("mcp-session-id")
            if session:
                self.headers["mcp-session-id"] = session
            self.headers["mcp-protocol-version"] = message["result"].get("protocolVersion", PROTOCOL)
        return message

    async def initialize(self) -> None:
        await self.request("initialize", {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
        response = await self.client.post(self.url, content=note, headers=self.headers)
        if response.status_code >= 400:
            raise RuntimeError(f"notifications/initialized: HTTP {response.status_code}")

    async def close(self) -> None:
        """End the session with DELETE. Not used in the runs: every server is stopped right after
        its run instead (the same for every row)."""
        if "mcp-session-id" in self.headers:
            try:
                await self.client.delete(self.url, headers=self.headers)
            except Exception:  # noqa: BLE001 - best effort: the server is stopped next anyway
                pass


class HttpServer:
    def __init__(self, row: Row, env: dict[str, str]):
        self.port = free_port() if row.fixed_port else 0
        command = [part.replace("{port}", str(self.port)) for part in row.command]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**env, **row.env}, start_new_session=True
        )
        self.stderr = StderrTail(self.proc.stderr, re.compile(row.ready) if row.ready else None)
        deadline = time.monotonic() + WAIT
        if row.fixed_port:
            while not self._accepts():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.fail("did not start listening")
                time.sleep(0.01)
        else:
            self.stderr.matched.wait(WAIT)
            if self.stderr.match is None:
                self.fail("did not say it was listening")
            self.port = int(self.stderr.match.group(1))
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def _accepts(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def fail(self, what: str) -> None:
        stop(self.proc)
        raise RuntimeError(f"{what} (exit {self.proc.poll()}); stderr:\n{self.stderr.text()}")

    def close(self) -> None:
        stop(self.proc)


async def http_load(url: str, callers: int, per_caller: int, pid: int) -> tuple[list[float], float, float | None]:
    """Latency samples, wall time and the server's CPU µs per call, over the timed calls only."""
    import httpx2

    limits = httpx2.Limits(max_connections=callers + 4, max_keepalive_connections=callers + 4)
    async with httpx2.AsyncClient(timeout=WAIT, limits=limits, trust_env=False) as client:
        sessions = [HttpCaller(client, url) for _ in range(callers)]
        await asyncio.wait_for(asyncio.gather(*(s.initialize() for s in sessions)), 3 * WAIT)

        async def warm(session: HttpCaller) -> None:
            await session.request("tools/list")
            for i in range(min(10, per_caller)):
                await session.request("tools/call", call_params(i))

        await asyncio.wait_for(asyncio.gather(*(warm(s) for s in sessions)), 3 * WAIT)
        samples: list[float] = []

        async def work(session: HttpCaller) -> None:
            for i in range(per_caller):
                t0 = time.perf_counter()
                await session.request("tools/call", call_params(i))
                samples.append((time.perf_counter() - t0) * 1000)

        cpu = cpu_seconds(pid)
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(work(s) for s in sessions)), 10 * WAIT)
        wall = time.perf_counter() - start
        return samples, wall, per_call_us(cpu, cpu_seconds(pid), len(samples))


async def http_first_list(url: str) -> None:
    import httpx2

    async with httpx2.AsyncClient(timeout=WAIT, trust_env=False) as client:
        session = HttpCaller(client, url)
        await session.initialize()
        await session.request("tools/list")


async def http_startups(row: Row, env: dict[str, str], startups: int) -> list[float]:
    """Spawn to the first tools/list answer, with the client (and its SSL context) made before
    the spawn, so only the server's own start-up is timed."""
    import httpx2

    times = []
    async with httpx2.AsyncClient(timeout=WAIT, trust_env=False) as client:
        for _ in range(startups):
            start = time.perf_counter()
            server = HttpServer(row, env)
            try:
                session = HttpCaller(client, server.url)
                await asyncio.wait_for(session.initialize(), 2 * WAIT)
                await asyncio.wait_for(session.request("tools/list"), 2 * WAIT)
                times.append((time.perf_counter() - start) * 1000)
            finally:
                server.close()
    return times


def http_run(row: Row, env: dict[str, str], callers: int, per_caller: int, startups: int) -> None:
    row.startup = statistics.median(asyncio.run(http_startups(row, env, startups)))
    server = HttpServer(row, env)
    try:
        asyncio.run(asyncio.wait_for(http_first_list(server.url), 2 * WAIT))
        row.rss_idle = settled_rss_mb(server.proc.pid)
        row.samples, row.wall, row.cpu_us = asyncio.run(http_load(server.url, callers, per_caller, server.proc.pid))
        row.rss_load = rss_peak_mb(server.proc.pid)
    finally:
        server.close()


# ---------------------------------------------------------------- the rows and the tables

READY = r"serving MCP over streamable HTTP at http://127\.0\.0\.1:(\d+)/mcp"


def stdio_rows() -> list[Row]:
    sdk = [PY, str(PEERS / "sdk_proxy.py"), "--", *ECHO] if importlib.util.find_spec("mcp") else None
    fastmcp = venv_python("fastmcp")
    return [
        Row("direct", "stdio", ECHO),
        Row("signoff run", "stdio", [PY, "-m", "signoff", "run", "--", *ECHO]),
        Row("SDK low-level proxy", "stdio", sdk, "" if sdk else "skipped: the mcp package is not importable"),
        Row("FastMCP create_proxy", "stdio", [fastmcp, str(PEERS / "fastmcp_proxy.py"), "--", *ECHO] if fastmcp else None,
            "" if fastmcp else f"skipped: {SETUP_HINT}", env={"FASTMCP_LOG_LEVEL": "WARNING"}),
        Row("mcp-proxy", "stdio", None, "n/a: serves HTTP/SSE in front of a stdio server (or stdio in front of "
            "an HTTP/SSE server), never stdio in front of stdio; see the HTTP table"),
    ]


def http_rows() -> list[Row]:
    fastmcp = venv_python("fastmcp")
    mcp_proxy = VENVS / "mcp-proxy" / "bin" / "mcp-proxy"
    has_mcp_proxy = venv_python("mcp-proxy") is not None and mcp_proxy.exists()
    return [
        Row("direct (SDK HTTP echo)", "http", [PY, str(PEERS / "http_echo.py")], ready=READY),
        Row("direct (SDK, JSON answers)", "http", [PY, str(PEERS / "http_echo.py"), "--json"], ready=READY),
        Row("signoff run --http", "http", [PY, "-m", "signoff", "run", "--http", "127.0.0.1:0", "--", *ECHO],
            ready=READY, env={"SIGNOFF_LOG_LEVEL": "info"}),
        Row("signoff --http --share session", "http",
            [PY, "-m", "signoff", "run", "--http", "127.0.0.1:0", "--share", "session", "--", *ECHO],
            ready=READY, env={"SIGNOFF_LOG_LEVEL": "info"}),
        Row("mcp-proxy --port", "http",
            [str(mcp_proxy), "--host", "127.0.0.1", "--port", "{port}", "--pass-environment", "--log-level", "WARNING", "--", *ECHO]
            if has_mcp_proxy else None, "" if has_mcp_proxy else f"skipped: {SETUP_HINT}", fixed_port=True),
        Row("FastMCP create_proxy (http)", "http",
            [fastmcp, str(PEERS / "fastmcp_proxy.py"), "--http", "{port}", "--", *ECHO] if fastmcp else None,
            "" if fastmcp else f"skipped: {SETUP_HINT}", env={"FASTMCP_LOG_LEVEL": "WARNING"}, fixed_port=True),
    ]


def run_rows(rows: list[Row], runner) -> None:
    for row in rows:
        if row.command is None:
            continue
        print(f"  running {row.transport}: {row.label} ...", file=sys.stderr, flush=True)
        try:
            runner(row)
        except Exception as exc:  # noqa: BLE001 - top level: one broken peer must not stop the others
            row.error = f"{type(exc).__name__}: {exc}"
            row.note = "failed: " + row.error.splitlines()[0][:120]
            print(f"  {row.label} failed:\n{row.error}", file=sys.stderr, flush=True)


def unmeasured(row: Row) -> bool:
    return row.command is None or row.error is not None


def cpu(row: Row) -> str:
    return "-" if row.cpu_us is None else f"{row.cpu_us:.0f}"


def print_stdio(rows: list[Row], calls: int) -> None:
    print(f"\n== stdio latency: {calls} sequential un-held tools/call ==")
    print(f"{'path':<26}{'mean ms':>9}{'p50 ms':>9}{'p99 ms':>9}{'ratio p50':>11}{'added p50':>11}{'added p99':>11}{'CPU µs/call':>13}")
    base = next((r for r in rows if r.label == "direct" and r.samples), None)
    for row in rows:
        if unmeasured(row):
            print(f"{row.label:<26}  {row.note}")
            continue
        p50, p99 = pct(row.samples, 0.5), pct(row.samples, 0.99)
        ratio = f"{p50 / pct(base.samples, 0.5):.2f}x" if base else "-"
        added50 = f"{p50 - pct(base.samples, 0.5):.3f}" if base and row is not base else "-"
        added99 = f"{p99 - pct(base.samples, 0.99):.3f}" if base and row is not base else "-"
        print(f"{row.label:<26}{statistics.fmean(row.samples):>9.3f}{p50:>9.3f}{p99:>9.3f}{ratio:>11}{added50:>11}{added99:>11}{cpu(row):>13}")


def print_http(rows: list[Row], callers: int, per_caller: int) -> None:
    print(f"\n== streamable HTTP throughput: {callers} concurrent callers x {per_caller} tools/call (one MCP session each) ==")
    print(f"{'path':<32}{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs direct':>11}{'CPU µs/call':>13}")
    base = next((r for r in rows if r.label.startswith("direct (SDK HTTP") and r.samples), None)
    for row in rows:
        if unmeasured(row):
            print(f"{row.label:<32}  {row.note}")
            continue
        rate = len(row.samples) / row.wall
        versus = f"{rate / (len(base.samples) / base.wall):.2f}x" if base else "-"
        print(f"{row.label:<32}{rate:>9.0f}{pct(row.samples, 0.5):>9.2f}{pct(row.samples, 0.99):>9.2f}{versus:>11}{cpu(row):>13}")
    print("CPU µs/call: the server process's own user+system time over the timed calls (not its upstream's).")


def print_memory(rows: list[Row], startups: int) -> None:
    print(f"\n== memory and start-up (start-up: median of {startups} spawns to the first tools/list answer) ==")
    print(f"{'process':<30}{'transport':>10}{'start-up ms':>13}{'idle RSS MB':>13}{'RSS after load MB':>19}")
    for row in rows:
        if unmeasured(row):
            if row.transport == "stdio" and row.label == "mcp-proxy":
                continue  # said once in the latency table; measured in its HTTP mode below
            print(f"{row.label:<32}{row.transport:>10}  {row.note}")
            continue
        idle = f"{row.rss_idle:.1f}" if row.rss_idle else "-"
        load = f"{row.rss_load:.1f}" if row.rss_load else "-"
        print(f"{row.label:<32}{row.transport:>10}{row.startup:>13.0f}{idle:>13}{load:>19}")
    print("RSS = VmHWM (peak resident set) of the proxy process itself, not of the upstream it starts; "
          "'after load' = after the latency run (stdio) or the throughput run (http). 'direct' rows are the upstream itself.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="sequential stdio calls per row (default 2000)")
    parser.add_argument("--callers", type=int, default=32, help="concurrent HTTP callers (default 32)")
    parser.add_argument("--per-caller", type=int, default=100, help="calls per HTTP caller (default 100)")
    parser.add_argument("--startups", type=int, default=10, help="spawns per row for the start-up median (default 10)")
    parser.add_argument("--only", choices=("stdio", "http"), help="run one transport's rows only")
    parser.add_argument("--smoke", action="store_true", help="a few iterations: checks that it runs (< 60 s without peers)")
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.per_caller, args.startups = 30, 2, 1
    from bench_proxy import compile_signoff

    compile_signoff()
    env = dict(os.environ)
    env.setdefault("SIGNOFF_HOME", tempfile.mkdtemp(prefix="signoff-bench-"))
    env.setdefault("SIGNOFF_LOG_LEVEL", "warning")
    env.setdefault("PYTHONUNBUFFERED", "1")
    started = time.perf_counter()
    load_at_start = "/".join(f"{x:.2f}" for x in os.getloadavg())
    srows = stdio_rows() if args.only != "http" else []
    hrows = http_rows() if args.only != "stdio" else []
    run_rows(srows, lambda row: stdio_run(row, env, args.calls, args.startups))
    run_rows(hrows, lambda row: http_run(row, env, args.callers, args.per_caller, args.startups))
    if srows:
        print_stdio(srows, args.calls)
    if hrows:
        print_http(hrows, args.callers, args.per_caller)
    print_memory(srows + hrows, args.startups)
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} cores; {time.perf_counter() - started:.0f} s in all; "
          f"load average at the start {load_at_start}, at the end {load} (other work on the machine skews p99).")


if __name__ == "__main__":
    main()
