"""signoff demo: a real MCP client talks to a real server through signoff, no AI client needed.

Run it with `make demo` (or `python examples/demo.py` once signoff is installed). It wraps
`mcp-server-time` and the scripted test server, lists their tools through the proxy, makes
calls, and shows what the model sees when a call is refused.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

CONFIG = """\
servers:
  time:
    command: {python}
    args: ["-m", "mcp_server_time", "--local-timezone", "UTC"]
  files:
    command: {python}
    args: ["-m", "signoff.testing", "--name", "files"]
policy: {policy}
"""

POLICY = """\
hitl_policies:
  - action: file_delete
    scope: all
  - tool: "files.write_file"
    decision: deny
    reason: "the demo never lets agents write files"
"""


def say(text: str) -> None:
    print(text, flush=True)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SIGNOFF_HOME", str(Path(tmp) / "home"))
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        config = Path(tmp) / "signoff.yaml"
        config.write_text(CONFIG.format(python=sys.executable, policy=policy))
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "signoff", "run", "--config", str(config)], env=dict(os.environ)
        )
        say(f"$ signoff run --config {config}\n")
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            with anyio.fail_after(60):
                init = await client.initialize()
                say(f"connected to {init.server_info.name} (protocol {init.protocol_version})")
                tools = await client.list_tools()
                say("tools seen by the model: " + ", ".join(t.name for t in tools.tools))
                now = await client.call_tool("time.get_current_time", {"timezone": "Europe/Paris"})
                say(f"\ntime.get_current_time -> allowed:\n{now.content[0].text}")
                target = Path(tmp) / "notes.txt"
                refused = await client.call_tool("files.write_file", {"path": str(target), "content": "hi"})
                say(f"\nfiles.write_file -> isError={refused.is_error}:\n  {refused.content[0].text}")
                say(f"  file written? {target.exists()}")
                target.write_text("keep me")
                held = await client.call_tool("files.delete_file", {"path": str(target)})
                say(f"\nfiles.delete_file -> isError={held.is_error}:\n  {held.content[0].text}")
                say(f"  file still there? {target.exists()}")


if __name__ == "__main__":
    anyio.run(main)
