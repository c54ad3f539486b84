"""signoff demo: a real MCP client, a real server, held calls and human decisions, no AI client.

    python examples/demo.py                        # the email/payments example (default)
    python examples/demo.py --example filesystem   # @modelcontextprotocol/server-filesystem (needs `npm ci`)
    python examples/demo.py --example git          # mcp-server-git on a scratch repository

The demo plays two people: the agent (an MCP client calling tools through `signoff run`) and
the human, who answers held calls with `signoff approve` / `signoff deny` from "another
terminal" (a subprocess here). Everything it prints is what you would see.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def say(text: str = "") -> None:
    print(text, flush=True)


def signoff_cli(*args: str) -> str:
    """The human's terminal: run a `signoff` command and show it."""
    say(f"  human$ signoff {' '.join(args)}")
    done = subprocess.run([sys.executable, "-m", "signoff", *args], capture_output=True, text=True, timeout=60)
    output = (done.stdout + done.stderr).strip()
    for line in output.splitlines():
        say(f"         {line}")
    return output


async def held_call(client: ClientSession, tool: str, args: dict, human: tuple[str, ...]) -> None:
    """Make a call that signoff holds; when it shows up in `signoff pending`, decide it."""
    say(f"\nagent → {tool}({json.dumps(args)[:100]})")
    result: list = []
    async with anyio.create_task_group() as tg:
        async def call() -> None:
            result.append(await client.call_tool(tool, args))

        tg.start_soon(call)
        with anyio.fail_after(30):
            while True:
                pending = json.loads(subprocess.run([sys.executable, "-m", "signoff", "pending", "--json"],
                                                    capture_output=True, text=True, timeout=60).stdout or "[]")
                if pending:
                    break
                await anyio.sleep(0.1)
        held = pending[0]
        say(f"  signoff holds it as {held['id']}: {held['reason']}")
        signoff_cli(human[0], held["id"], *human[1:])
    show(result[0])


def show(result) -> None:
    text = "\n".join(getattr(c, "text", str(c)) for c in result.content)
    marker = "isError" if result.is_error else "ok"
    say(f"  result ({marker}): {text[:300]}")


async def scenario_email_payments(client: ClientSession, work: Path) -> None:
    say("\nagent → biz.send_email to a colleague (internal: allowed)")
    show(await client.call_tool("send_email", {"to": "ann@company.com", "subject": "lunch?", "body": "12:30?"}))
    say("\nagent → biz.checkout for $25 (under $100: allowed)")
    show(await client.call_tool("checkout", {"item": "usb cable", "amount": 25}))
    await held_call(client, "send_email", {"to": "cfo@partner-bank.example", "subject": "Q3 invoice", "body": "attached"},
                    ("approve", "--reason", "expected invoice"))
    await held_call(client, "checkout", {"item": "laptop", "amount": 2400}, ("deny", "--reason", "over budget; ask finance first"))
    await held_call(client, "run_sql", {"sql": "DELETE FROM users WHERE id = 7"}, ("deny", "--reason", "never delete users"))
    say("\nagent → biz.run_sql INSERT INTO notes (a table no rule names: allowed)")
    show(await client.call_tool("run_sql", {"sql": "INSERT INTO notes(text) VALUES ('hi')"}))
    await held_call(client, "call_api", {"url": "https://payments.stripe.com/v1/refunds", "method": "POST"}, ("approve",))


async def scenario_filesystem(client: ClientSession, work: Path) -> None:
    say("\nagent → filesystem.list_directory (reading: allowed)")
    show(await client.call_tool("list_directory", {"path": str(work)}))
    target = work / "notes.md"
    await held_call(client, "write_file", {"path": str(target), "content": "# notes\n"}, ("approve",))
    say(f"  {target.name} exists now: {target.exists()}")
    await held_call(client, "move_file", {"source": str(target), "destination": str(work / "gone.md")},
                    ("deny", "--reason", "keep notes.md where it is"))
    say(f"  {target.name} still there: {target.exists()}")
    say("\nagent → filesystem.write_file into ~/.ssh (a deny rule: refused without asking)")
    show(await client.call_tool("write_file", {"path": str(work / ".ssh" / "id_rsa"), "content": "x"}))


async def scenario_git(client: ClientSession, work: Path) -> None:
    say("\nagent → git.git_status (reading: allowed)")
    show(await client.call_tool("git_status", {"repo_path": str(work)}))
    (work / "feature.txt").write_text("new feature\n")
    say("\nagent → git.git_add feature.txt (one named file: allowed)")
    show(await client.call_tool("git_add", {"repo_path": str(work), "files": ["feature.txt"]}))
    await held_call(client, "git_commit", {"repo_path": str(work), "message": "Add feature"}, ("approve",))
    await held_call(client, "git_reset", {"repo_path": str(work)}, ("deny", "--reason", "do not discard staged work"))


SCENARIOS = {
    "email-payments": scenario_email_payments,
    "filesystem": scenario_filesystem,
    "git": scenario_git,
}


def setup(example: str, work: Path) -> tuple[list[str], str]:
    """(the wrapped server's command, the policy) for an example."""
    if example == "email-payments":
        os.environ["FAKE_OUTBOX"] = str(work / "outbox.jsonl")
        return ["--name", "biz", "--", sys.executable, str(HERE / "email-payments" / "server.py")], str(HERE / "email-payments" / "policy.yaml")
    if example == "filesystem":
        entry = ROOT / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"
        if not entry.exists():
            sys.exit("the filesystem example needs the npm server: run `npm ci` in the repository first")
        return ["--name", "filesystem", "--", shutil.which("node") or "node", str(entry), str(work)], str(HERE / "filesystem" / "policy.yaml")
    env = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
           "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.com"}
    os.environ.update({k: v for k, v in env.items() if k.startswith("GIT_")})
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "README.md").write_text("demo\n")
    subprocess.run(["git", "-C", str(work), "add", "README.md"], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "first"], check=True)
    return ["--name", "git", "--", sys.executable, "-m", "mcp_server_git", "--repository", str(work)], str(HERE / "git" / "policy.yaml")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", choices=sorted(SCENARIOS), default="email-payments")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SIGNOFF_HOME", str(Path(tmp) / "home"))
        work = Path(tmp) / "work"
        work.mkdir()
        server, policy = setup(args.example, work)
        command = ["run", "--policy", policy, *server]
        say(f"agent's MCP server: signoff {' '.join(command)}")
        params = StdioServerParameters(command=sys.executable, args=["-m", "signoff", *command], env=dict(os.environ))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            with anyio.fail_after(60):
                await client.initialize()
                tools = await client.list_tools()
            say("tools the agent sees: " + ", ".join(t.name for t in tools.tools))
            await SCENARIOS[args.example](client, work)
        say("\nthe audit trail:")
        signoff_cli("audit")
        signoff_cli("audit", "verify")


if __name__ == "__main__":
    anyio.run(main)
