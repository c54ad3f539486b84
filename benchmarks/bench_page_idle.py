"""An idle approval page: what one open page costs while nothing changes.

Puts N held calls (retry mode, ~1 KB of arguments each) in a fresh SIGNOFF_HOME, starts
`signoff ui`, opens one server-sent-events stream like the page does, and measures for a while
after the first queue event: the page process's CPU share (from /proc) and the bytes the stream
sends per second. Goal (issue #10.12): < 2% CPU and < 100 KB/s with 300 held calls.
Also prints the size of one held call's row with a 20-call session history of big arguments.
Usage: python benchmarks/bench_page_idle.py [--calls 300] [--seconds 20] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import cpu_seconds  # noqa: E402 - a sibling script, not a package


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fill(calls: int) -> None:
    from signoff.approvals.broker import Broker
    from signoff.model import Decision, ToolCall, Verdict

    broker = Broker()
    for i in range(calls):
        call = ToolCall("filesystem", "write_file", {"path": f"/srv/app/file{i}.txt", "content": "x" * 1000},
                        session=f"s{i % 7}", client="bench")
        broker.issue_retry(call, Decision(Verdict.ASK, "writes need approval", "hitl_policies[0]", 3600), "hash")


def history_row_size() -> int:
    """Bytes of one held row whose session made 20 earlier calls with 100 KB arguments each."""
    import sqlite3

    from signoff import paths
    from signoff.approvals.broker import Broker
    from signoff.model import Decision, ToolCall, Verdict

    history = [{"tool": "fs.write_file", "arguments": {"path": f"/f{i}", "content": "y" * 100_000}, "outcome": "allowed"}
               for i in range(20)]
    held_id = Broker().issue_retry(ToolCall("fs", "write_file", {"path": "/a", "content": "z"}),
                                   Decision(Verdict.ASK, "x", None, 60), history=history)
    conn = sqlite3.connect(paths.db_path())
    size = conn.execute("SELECT length(session_history) + length(arguments) FROM held WHERE id = ?", (held_id,)).fetchone()[0]
    conn.close()
    return size


def measure(port: int, token: str, seconds: float, pid: int) -> tuple[int, int, float | None]:
    """(bytes of the first event, bytes after it, CPU seconds of the page process after it)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: signoff_token={token}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    buffer = b""
    sock.settimeout(30)
    while b"event: queue" not in buffer or not buffer.rstrip(b"\r\n").endswith(b"}"):
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("the page closed the stream")
        buffer += chunk
    first = len(buffer)
    cpu_start, start = cpu_seconds(pid), time.monotonic()
    later = 0
    sock.settimeout(0.5)
    while time.monotonic() - start < seconds:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not chunk:
            break
        later += len(chunk)
    cpu_end = cpu_seconds(pid)
    sock.close()
    cpu = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
    return first, later, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true", help="a short run for CI")
    options = parser.parse_args()
    if options.smoke:
        options.calls, options.seconds = 20, 2.0
    home = os.environ.get("SIGNOFF_HOME") or tempfile.mkdtemp(prefix="signoff-bench-page-")
    os.environ["SIGNOFF_HOME"] = home
    fill(options.calls)
    from signoff.web.security import load_secret

    token = load_secret("ui-token")
    assert token is not None
    port = free_port()
    page = subprocess.Popen([sys.executable, "-m", "signoff", "ui", "--port", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("signoff ui did not start") from None
                time.sleep(0.05)
        first, later, cpu = measure(port, token, options.seconds, page.pid)
    finally:
        page.terminate()
        page.wait(10)
    rate = later / options.seconds
    share = None if cpu is None else 100 * cpu / options.seconds
    print(f"idle page, {options.calls} held calls, {options.seconds:g} s after the first event")
    print(f"{'first queue event':<28}{first / 1024:>10.1f} KB")
    print(f"{'sent while idle':<28}{rate / 1024:>10.3f} KB/s   (goal < 100 KB/s)")
    print(f"{'page process CPU':<28}{'n/a' if share is None else f'{share:.2f} %':>10}     (goal < 2 %)")
    print(f"{'held row, 20 x 100 KB history':<28}{history_row_size() / 1024:>10.1f} KB")


if __name__ == "__main__":
    main()
