"""A tiny interactive MCP client for pseudo-terminal tests of `signoff run --tty`.

Started by pexpect in a pty (its controlling terminal), it starts the proxy given after `--`
with pipes for stdin/stdout (as AI clients do, same session, so the proxy shares the terminal),
and reports what the terminal looked like at each step:

  MODES start|tui|started|called <stty>  terminal modes at first, in the client's own (non-canonical)
                                         mode, after the proxy started, after the call
  client> / CLIENT GOT: <line>           a line typed into the client's own prompt reaches the client
  WAITING <file>                         it waits for that file before making the call (keys typed
                                         meanwhile sit in the terminal's input buffer)
  RESULT <json>                          the call's result

Usage: term_client.py CALL_JSON GO_FILE CLIENT_NAME -- PROXY COMMAND...
(TERM_CLIENT_BACKGROUND=1 starts the proxy in its own process group: the terminal's background.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def modes() -> str:
    with open("/dev/tty") as tty:
        return subprocess.run(["stty", "-g"], stdin=tty, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    call, go, client_name = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    command = sys.argv[sys.argv.index("--") + 1 :]
    print("MODES start", modes(), flush=True)
    import termios

    original = termios.tcgetattr(0)
    tui = termios.tcgetattr(0)
    tui[3] &= ~termios.ICANON  # keys without Enter, as an interactive client's own UI reads them
    termios.tcsetattr(0, termios.TCSANOW, tui)
    print("MODES tui", modes(), flush=True)
    background = {"process_group": 0} if os.environ.get("TERM_CLIENT_BACKGROUND") else {}  # a job not in the foreground
    proxy = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(go + ".log", "w"),  # noqa: SIM115 - the child owns it until the script ends
        **background,
    )
    assert proxy.stdin is not None and proxy.stdout is not None

    def send(message: dict) -> None:
        proxy.stdin.write(json.dumps(message).encode() + b"\n")
        proxy.stdin.flush()

    def answer(request_id: int) -> dict | None:
        while True:
            line = proxy.stdout.readline()
            if not line:
                return None  # the proxy ended
            message = json.loads(line)
            if message.get("id") == request_id and ("result" in message or "error" in message):
                return message

    send(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": client_name, "version": "1"}},
        }
    )
    answer(1)
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    answer(2)
    print("MODES started", modes(), flush=True)
    print("client> ", end="", flush=True)
    print("CLIENT GOT:", sys.stdin.readline().strip(), flush=True)
    print("WAITING", go, flush=True)
    while not os.path.exists(go):
        time.sleep(0.02)
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call})
    print("RESULT", json.dumps(answer(3)), flush=True)
    print("MODES called", modes(), flush=True)
    proxy.stdin.close()
    proxy.wait(30)
    print("EXIT", proxy.returncode, flush=True)
    termios.tcsetattr(0, termios.TCSANOW, original)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
