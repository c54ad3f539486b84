"""The benchmark's echo upstream served directly over streamable HTTP (MCP SDK low-level `Server`
+ `streamable_http_app`, uvicorn): the "direct" row of the HTTP throughput table.

Usage: python benchmarks/peers/http_echo.py [--port 0] [--json]
(--json: answer each POST with a JSON body instead of an SSE stream, as mcp-proxy's server does)
Logs "serving MCP over streamable HTTP at http://127.0.0.1:PORT/mcp" on stderr once listening.
"""

import argparse
import json
import socket
import sys

import anyio
import uvicorn
from mcp import types
from mcp.server.lowlevel import Server


async def list_tools(ctx, params) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[types.Tool(name="echo", input_schema={"type": "object"})])


async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(params.arguments))])


async def serve(port: int, json_response: bool) -> None:
    server = Server("bench-http-echo", on_list_tools=list_tools, on_call_tool=call_tool)
    app = server.streamable_http_app(json_response=json_response)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    port = sock.getsockname()[1]
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    print(f"serving MCP over streamable HTTP at http://127.0.0.1:{port}/mcp", file=sys.stderr, flush=True)
    await web.serve(sockets=[sock])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    anyio.run(serve, args.port, args.json)
