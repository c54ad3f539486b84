"""The naive proxy design, as a reference point: MCP SDK low-level `Server` (stdio, downstream)
in front of a `ClientSession` (stdio, upstream). Every message is decoded into SDK models and
re-encoded on each hop. Tools only — enough for the benchmark.

Usage: python benchmarks/peers/sdk_proxy.py -- <upstream command...>
"""

import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server


async def main(command: list[str]) -> None:
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with stdio_client(params) as (up_read, up_write), ClientSession(up_read, up_write) as upstream:
        await upstream.initialize()

        async def list_tools(ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
            return await upstream.list_tools()

        async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
            return await upstream.call_tool(params.name, params.arguments)

        server = Server("sdk-proxy", on_list_tools=list_tools, on_call_tool=call_tool)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit("usage: sdk_proxy.py -- <upstream command...>")
    anyio.run(main, argv)
