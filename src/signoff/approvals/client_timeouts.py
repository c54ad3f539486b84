"""How long known MCP clients wait for one tool call before they give up on it.

Clients do not announce their request timeout, and many abort a held call without sending
`notifications/cancelled`; a later approval would then run a call the model was told had failed.
So signoff keeps what is known per client (by `clientInfo.name` from `initialize`), and a
policy can add or override entries with `defaults.client_timeouts: {name: duration}`.

Used two ways (see approvals/gate.py): a rule whose timeout is longer than the client's patience
switches to `hold: retry` (the model is told to call again after approval), unless the rule
says `hold: wait` explicitly; then the held call expires when the client stops waiting.

`None` means: no fixed limit known (the client waits, or the user configures it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownClient:
    names: tuple[str, ...]
    seconds: float | None
    source: str


KNOWN_CLIENTS: tuple[KnownClient, ...] = (
    KnownClient(
        ("inspector-cli", "mcp-inspector", "mcp-inspector-tui"),
        60.0,
        "@modelcontextprotocol/inspector 2.12: the CLI (clientInfo 'inspector-cli', CLI_CLIENT_NAME "
        "in clients/cli/build/index.js) passes no request timeout, so DEFAULT_REQUEST_TIMEOUT_MSEC "
        "= 60000 applies with progress off; web 'mcp-inspector' and TUI 'mcp-inspector-tui' use "
        "the same default unless configured; inspector issue #2314 (60 s even with progress). "
        "Measured here: the CLI aborts a held call at 60 s and sends notifications/cancelled",
    ),
    KnownClient(
        ("claude-ai",),
        60.0,
        "Claude Desktop: TypeScript SDK default (anthropics/claude-code #22542, #63379: "
        "'MCP error -32001: Request timed out' at ~60 s, not configurable)",
    ),
    KnownClient(("cursor-vscode",), 300.0, "Cursor: requests cancelled after exactly 5 minutes (cursor/cursor #3510)"),
    KnownClient(
        ("claude-code",),
        None,
        "Claude Code CLI: MCP_TOOL_TIMEOUT, long by default (anthropics/claude-code #63379: the CLI runs calls past 60 s)",
    ),
    KnownClient(("Visual Studio Code",), None, "VS Code: no fixed tool-call limit known"),
    KnownClient(
        ("fast-agent", "fast-agent-mcp"),
        None,
        "fast-agent: per-server read_timeout_seconds in fastagent.config.yaml (unset: none); "
        "set defaults.client_timeouts to match",
    ),
)


def client_timeout(client: str, overrides: Mapping[str, float] | None = None) -> float | None:
    """Seconds `client` waits for a tool call, or None if not known to be limited."""
    if overrides and client in overrides:
        return overrides[client]
    for known in KNOWN_CLIENTS:
        if client in known.names:
            return known.seconds
    return None
