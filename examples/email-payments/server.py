"""A fake email / payments / API / database server, written with the MCP SDK.

Nothing leaves this machine: every tool only records what it would have done in an outbox
file, so the effect of signoff's policy (`policy.yaml` beside this file) is easy to see.

    signoff run --name biz --policy examples/email-payments/policy.yaml -- python examples/email-payments/server.py
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

OUTBOX = Path(os.environ.get("FAKE_OUTBOX", Path(__file__).with_name("outbox.jsonl")))
DB = Path(os.environ.get("FAKE_DB", ":memory:"))

server = MCPServer("biz", instructions="Email, payments, HTTP APIs and a database, all simulated.")


def _record(kind: str, **details: object) -> str:
    entry = {"ts": time.time(), "kind": kind, **details}
    with OUTBOX.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    return f"{kind} done: {json.dumps(details)}"


@server.tool()
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email."""
    return _record("email", to=to, subject=subject)


@server.tool()
def checkout(item: str, amount: float, currency: str = "USD") -> str:
    """Buy something."""
    return _record("purchase", item=item, amount=amount, currency=currency)


@server.tool()
def call_api(url: str, method: str = "GET", payload: str = "") -> str:
    """Call an HTTP API (simulated)."""
    return _record("api", url=url, method=method)


_conn = sqlite3.connect(str(DB), check_same_thread=False)
_conn.executescript(
    "CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, name TEXT);"
    "CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, text TEXT);"
)


@server.tool()
def run_sql(sql: str) -> str:
    """Run one SQL statement against the demo database."""
    cursor = _conn.execute(sql)
    _conn.commit()
    rows = cursor.fetchall()
    _record("sql", sql=sql)
    return json.dumps(rows) if rows else f"ok ({cursor.rowcount} rows changed)"


if __name__ == "__main__":
    server.run()
