"""signoff: a transparent MCP proxy that holds risky tool calls for human approval.

Kept import-free on purpose: `signoff run` must start its upstream before any heavy import.
"""

__version__ = "0.1.0"
