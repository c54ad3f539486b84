"""FastMCP's proxy, as its documentation shows it: `create_proxy(<stdio transport>)` served over
stdio. Runs in its own virtualenv (benchmarks/.venvs/fastmcp, see setup_peers.sh).

Usage: benchmarks/.venvs/fastmcp/bin/python benchmarks/peers/fastmcp_proxy.py [--http PORT] -- <upstream command...>
(--http PORT: serve streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio)
"""

import os
import sys

from fastmcp.client.transports import StdioTransport

try:
    from fastmcp.server import create_proxy
except ImportError:  # older FastMCP: FastMCP.as_proxy
    from fastmcp import FastMCP

    create_proxy = FastMCP.as_proxy


def main(command: list[str], http_port: int | None) -> None:
    upstream = StdioTransport(command=command[0], args=command[1:], env=dict(os.environ))
    proxy = create_proxy(upstream, name="fastmcp-proxy")
    if http_port is None:
        proxy.run(transport="stdio", show_banner=False)
    else:
        proxy.run(transport="http", host="127.0.0.1", port=http_port, path="/mcp", show_banner=False)


if __name__ == "__main__":
    argv = sys.argv[1:]
    port = None
    if argv[:1] == ["--http"]:
        port, argv = int(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit("usage: fastmcp_proxy.py -- <upstream command...>")
    main(argv, port)
