"""The audit trail: one append-only, hash-chained row per event of every tool call.

Each row's `hash` is sha256 over the canonical JSON of its content plus the previous row's hash,
so changing, removing or reordering a row breaks the chain at a place `verify()` can name. The
store also keeps the chain's head (last id and hash), so cutting rows off the end is found too.
Appending happens inside the store's write transaction (see `SQLiteStore.append_audit`): many
proxy processes can append at once and the chain stays linear.
"""

from __future__ import annotations

import fnmatch
import getpass
import hashlib
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from signoff.model import ToolCall, canonical_json

if TYPE_CHECKING:
    from signoff.store import Store

GENESIS = "0" * 64
"""The `prev_hash` of the first row."""

DECISIONS = ("allowed", "held", "approved", "denied", "timeout", "killed", "withdrawn", "abandoned",
             "upstream_error", "observed", "expired", "forwarded", "not_run")
CHANNELS = ("policy", "cli", "watch", "tty", "web", "elicit", "kill", "timeout", "client", "signoff")

FIELDS = ("id", "time", "server", "tool", "arguments", "decision", "decided_by", "channel", "reason",
          "duration_ms", "policy_hash", "rule", "held_id", "session", "client", "prev_hash")
"""Every column the hash covers (all but `hash` itself), in table order."""


def now_iso(at: float | None = None) -> str:
    """UTC time with microseconds and a fixed width, so text order is time order."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(row: Mapping[str, Any]) -> str:
    """The chain hash of one row as stored (its `prev_hash` included)."""
    content = {name: row.get(name) for name in FIELDS}
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def user() -> str:
    """The OS user who decides (recorded in held calls and audit rows)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return "unknown"


def entry(call: ToolCall | None = None, decision: str = "allowed", *, server: str = "", tool: str = "",
          arguments: Any = None, channel: str = "policy", by: str | None = None, reason: str = "",
          duration_ms: float | None = None, policy_hash: str = "", rule: str | None = None,
          held_id: str | None = None, session: str = "", client: str = "") -> dict[str, Any]:
    """The content of one audit row (without id, time and hashes, which the store adds)."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown audit decision {decision!r}; use one of {', '.join(DECISIONS)}")
    if call is not None:
        server, tool = call.server, call.tool
        arguments = dict(call.arguments) if arguments is None else arguments
        session, client = session or call.session, client or call.client
    return {
        "server": server, "tool": tool, "arguments": canonical_json(arguments if arguments is not None else {}),
        "decision": decision, "decided_by": by or user(), "channel": channel, "reason": reason or "",
        "duration_ms": None if duration_ms is None else round(float(duration_ms), 3),
        "policy_hash": policy_hash or "", "rule": rule, "held_id": held_id, "session": session or "",
        "client": client or "",
    }


@dataclass(frozen=True)
class Problem:
    """The first place the chain is broken: `row` is the id to look at, `message` says what."""

    row: int
    message: str

    def __str__(self) -> str:
        return self.message


def verify_rows(rows: Iterator[Mapping[str, Any]], head: tuple[int, str] | None) -> tuple[int, Problem | None]:
    """Walk rows in id order; return how many were checked and the first problem, if any."""
    prev_id, prev_hash, count = 0, GENESIS, 0
    for row in rows:
        count += 1
        rid = row["id"]
        if row_hash(row) != row["hash"]:
            return count, Problem(rid, f"row {rid} was changed (its content no longer matches its hash)")
        if row["prev_hash"] != prev_hash:
            if rid != prev_id + 1:
                missing = prev_id + 1
                span = f"row {missing} is missing" if rid == missing + 1 else f"rows {missing}–{rid - 1} are missing"
                return count, Problem(missing, f"{span} (ids jump {prev_id}→{rid})")
            return count, Problem(rid, f"row {rid}: hash chain broken (its prev_hash does not match row {prev_id}'s "
                                       f"hash; row {prev_id} may have been rewritten)")
        prev_id, prev_hash = rid, row["hash"]
    if head is not None and head[0] > prev_id:
        span = f"row {head[0]} is" if head[0] == prev_id + 1 else f"rows {prev_id + 1}–{head[0]} are"
        return count, Problem(prev_id + 1, f"{span} missing (the chain ended at row {head[0]} but the last row "
                                           f"is {prev_id})")
    if head is not None and head[0] == prev_id and head[1] != prev_hash:
        return count, Problem(prev_id, f"row {prev_id}: hash chain broken (it is not the row the chain ended with)")
    return count, None


_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")


def parse_since(text: str, *, now: float | None = None) -> str:
    """An ISO time or a span back from now (`90s`, `15m`, `1h`, `7d`) as the stored time format."""
    match = _AGO.match(text)
    if match:
        seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
        return now_iso((time.time() if now is None else now) - seconds)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a time (2026-11-25T10:00) nor a span (30m, 1h, 7d)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a bare time is local time
    return now_iso(moment.timestamp())


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row for people and scripts: arguments decoded."""
    out = dict(row)
    try:
        out["arguments"] = json.loads(row["arguments"]) if row.get("arguments") else {}
    except ValueError:
        pass  # a tampered row; verify() reports it, listing still shows the text
    return out


class AuditLog:
    """Append, query, verify and export the audit trail of one store."""

    def __init__(self, store: Store):
        self.store = store

    def append(self, call: ToolCall | None = None, decision: str = "allowed", **fields: Any) -> int:
        """Append one row (see `entry` for the fields); returns its id. Blocking (one small commit)."""
        return self.store.append_audit(entry(call, decision, **fields))

    async def append_async(self, call: ToolCall | None = None, decision: str = "allowed", **fields: Any) -> int:
        """`append` on a worker thread, for the proxy's event loop."""
        import anyio

        content = entry(call, decision, **fields)
        return await anyio.to_thread.run_sync(self.store.append_audit, content)

    def query(self, *, tool: str | None = None, decision: str | None = None, since: str | None = None,
              until: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Rows oldest first; `tool` is a glob over `server.tool` (or the bare tool name)."""
        rows: Iterator[dict[str, Any]] = self.store.audit_rows(decision=decision, since=since, until=until)
        if tool:
            rows = (r for r in rows if fnmatch.fnmatchcase(f"{r['server']}.{r['tool']}", tool)
                    or fnmatch.fnmatchcase(r["tool"] or "", tool))
        found = [public(r) for r in rows]
        return found[-limit:] if limit else found

    def verify(self) -> tuple[int, Problem | None]:
        """Check the whole chain: (rows checked, first problem or None)."""
        return verify_rows(self.store.audit_rows(), self.store.audit_head())

    def export_jsonl(self, stream: IO[str]) -> int:
        """Write every row (hashes included, so an export can be checked elsewhere) as JSON lines."""
        count = 0
        for row in self.store.audit_rows():
            stream.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
        return count
