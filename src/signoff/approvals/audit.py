"""The audit trail: one append-only, hash-chained row per event of every tool call.

Each row's `hash` is sha256 over the canonical JSON of its content plus the previous row's hash,
so changing, removing or reordering a row breaks the chain at a place `verify()` can name. The
store also keeps the chain's head (last id and hash) in the database, and appends it after every
commit to a witness file beside it (`signoff.audit-head`): cutting rows off the end together with
the head row is found by comparing the two. With SIGNOFF_AUDIT_KEY set, each row also carries an
HMAC-SHA256 of its hash, so a consistent rewrite of database and witness needs the key.
Appending happens inside the store's write transaction (see `SQLiteStore.append_audit`): many
proxy processes can append at once and the chain stays linear.
"""

from __future__ import annotations

import fnmatch
import getpass
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from signoff.model import Identity, ToolCall, canonical_json
from signoff.redact import redact


class AuditStore(Protocol):
    """What the audit trail needs from a store (`approvals.store.Store` provides it)."""

    def append_audit(self, content: dict[str, Any]) -> int: ...
    def audit_rows(
        self, *, decision: str | None = None, since: str | None = None, until: str | None = None
    ) -> Iterator[dict[str, Any]]: ...
    def audit_head(self) -> tuple[int, str] | None: ...


def audit_key() -> bytes | None:
    """The optional audit signing key (SIGNOFF_AUDIT_KEY); None when unset."""
    key = os.environ.get("SIGNOFF_AUDIT_KEY")
    return key.encode() if key else None


def audit_mac(key: bytes, row_hash_hex: str) -> str:
    """A row's signature: HMAC-SHA256 of its hash under the audit key."""
    return hmac.new(key, row_hash_hex.encode(), hashlib.sha256).hexdigest()


GENESIS = "0" * 64
"""The `prev_hash` of the first row."""

DECISIONS = (
    "allowed",
    "held",
    "approved",
    "denied",
    "timeout",
    "killed",
    "withdrawn",
    "abandoned",
    "upstream_error",
    "observed",
    "expired",
    "forwarded",
    "not_run",
    "approval_vote",
    "denial_vote",
    "refused_vote",
)  # votes: approvals/votes.py
CHANNELS = ("policy", "cli", "watch", "tty", "web", "elicit", "kill", "timeout", "client", "signoff")

FIELDS = (
    "id",
    "time",
    "server",
    "tool",
    "arguments",
    "decision",
    "decided_by",
    "channel",
    "reason",
    "duration_ms",
    "policy_hash",
    "rule",
    "held_id",
    "session",
    "client",
    "prev_hash",
)
"""Every column the hash covers (all but `hash` itself), in table order."""


def now_iso(at: float | None = None) -> str:
    """UTC time with microseconds and a fixed width, so text order is time order."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


OPTIONAL_FIELDS = ("identity",)
"""Columns added later: the hash covers them only when set, so older rows still verify."""


def row_hash(row: Mapping[str, Any]) -> str:
    """The chain hash of one row as stored (its `prev_hash` included)."""
    content = {name: row.get(name) for name in FIELDS}
    content.update({name: row[name] for name in OPTIONAL_FIELDS if row.get(name) is not None})
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def user() -> str:
    """The OS user who decides (recorded in held calls and audit rows)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return "unknown"


def entry(
    call: ToolCall | None = None,
    decision: str = "allowed",
    *,
    server: str = "",
    tool: str = "",
    arguments: Any = None,
    channel: str = "policy",
    by: str | None = None,
    reason: str = "",
    duration_ms: float | None = None,
    policy_hash: str = "",
    rule: str | None = None,
    held_id: str | None = None,
    session: str = "",
    client: str = "",
    identity: Identity | None = None,
) -> dict[str, Any]:
    """The content of one audit row (without id, time and hashes, which the store adds).
    `identity` (machine, agent, owner; default: the call's) is kept as JSON in its own column."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown audit decision {decision!r}; use one of {', '.join(DECISIONS)}")
    if call is not None:
        server, tool = call.server, call.tool
        arguments = dict(call.arguments) if arguments is None else arguments
        session, client = session or call.session, client or call.client
        identity = identity or call.identity
    return {
        "server": server,
        "tool": tool,
        "arguments": canonical_json(redact(arguments) if arguments is not None else {}),
        "decision": decision,
        "decided_by": by or user(),
        "channel": channel,
        "reason": reason or "",
        "duration_ms": None if duration_ms is None else round(float(duration_ms), 3),
        "policy_hash": policy_hash or "",
        "rule": rule,
        "held_id": held_id,
        "session": session or "",
        "client": client or "",
        "identity": None if identity is None else canonical_json(identity.as_dict()),
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
            return count, Problem(
                rid,
                f"row {rid}: hash chain broken (its prev_hash does not match row {prev_id}'s "
                f"hash; row {prev_id} may have been rewritten)",
            )
        prev_id, prev_hash = rid, row["hash"]
    if head is not None and head[0] > prev_id:
        span = f"row {head[0]} is" if head[0] == prev_id + 1 else f"rows {prev_id + 1}–{head[0]} are"
        return count, Problem(prev_id + 1, f"{span} missing (the chain ended at row {head[0]} but the last row is {prev_id})")
    if head is not None and head[0] == prev_id and head[1] != prev_hash:
        return count, Problem(prev_id, f"row {prev_id}: hash chain broken (it is not the row the chain ended with)")
    return count, None


@dataclass
class Report:
    """The whole verdict of `AuditLog.check()`: chain, witness and signatures."""

    checked: int = 0
    problem: Problem | None = None
    witness: str = "no witness file"
    signed: str = "no"
    key: str = "not given"
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"witness: {self.witness}; signed: {self.signed}, key {self.key}"


def read_witness(path: Path) -> tuple[tuple[int, str, str | None] | None, int | None] | None:
    """(highest witnessed (id, hash, mac), id of the last `start` line) or None without a file.

    Malformed lines (a torn write) are skipped: only the highest well-formed entry matters, since
    rewriting any earlier row changes every later hash, this one's included."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    best: tuple[int, str, str | None] | None = None
    start: int | None = None
    for line in text.splitlines():
        parts = line.split()
        try:
            if len(parts) == 3 and parts[0] == "start":
                start = int(parts[1])
                entry: tuple[int, str, str | None] = (start, parts[2], None)
            elif len(parts) == 3:
                entry = (int(parts[0]), parts[1], None if parts[2] == "-" else parts[2])
            else:
                continue
        except ValueError:
            continue
        if best is None or entry[0] > best[0]:
            best = entry
    return best, start


def _against_witness(
    best: tuple[int, str, str | None], last: int, at_witness: tuple[str, str | None] | None, witness_file: Path | None
) -> list[Problem]:
    """What the witness file's head says about an intact chain: rows cut off its end, or the row
    the witness saw rewritten (its hash or its signature differs)."""
    wid, whash, wmac = best
    if last < wid:
        span = f"row {wid} is" if wid == last + 1 else f"rows {last + 1}–{wid} are"
        return [
            Problem(
                last + 1,
                f"{span} missing: the witness {witness_file} saw the chain reach row "
                f"{wid}, the database ends at row {last} (rows cut, or the store replaced)",
            )
        ]
    if wid and at_witness is not None and at_witness[0] != whash:
        return [
            Problem(
                wid, f"row {wid} is not the row the witness {witness_file} saw (the trail was rewritten, or the store replaced)"
            )
        ]
    if wmac and at_witness is not None and at_witness[1] != wmac:
        return [Problem(wid, f"row {wid}: its signature differs from the one the witness saw")]
    return []


def check_trail(
    rows: Iterator[Mapping[str, Any]], head: tuple[int, str] | None, *, witness_file: Path | None = None, key: bytes | None = None
) -> Report:
    """`verify_rows`, plus the witness file's head and (with `key`) every row's signature."""
    report = Report(warnings=[], key="not given (set SIGNOFF_AUDIT_KEY to check signatures)")
    witnessed = read_witness(witness_file) if witness_file is not None else None  # before the rows
    best, start = witnessed if witnessed is not None else (None, None)
    seen: dict[str, Any] = {"signed": 0, "unsigned": 0, "last": 0, "at_witness": None, "bad_mac": None, "stripped": None}

    def watched() -> Iterator[Mapping[str, Any]]:
        for row in rows:
            rid, mac = row["id"], row.get("mac")
            seen["last"] = rid
            if best is not None and rid == best[0]:
                seen["at_witness"] = (row["hash"], mac)
            if mac:
                seen["signed"] += 1
                if key is not None and seen["bad_mac"] is None and not hmac.compare_digest(mac, audit_mac(key, row["hash"])):
                    seen["bad_mac"] = rid
            else:
                seen["unsigned"] += 1
                if seen["signed"] and seen["stripped"] is None:
                    seen["stripped"] = rid
            yield row

    report.checked, chain = verify_rows(watched(), head)
    found = [chain] if chain is not None else []
    last, signed, unsigned = seen["last"], seen["signed"], seen["unsigned"]
    if best is not None and chain is None:
        found.extend(_against_witness(best, last, seen["at_witness"], witness_file))
    if best is not None:
        report.witness = f"head row {best[0]}" + (" matches" if not found else "")
        if start:
            report.warnings.append(
                f"the witness {witness_file} (re)started at row {start}: cuts before it were not witnessed (was it deleted?)"
            )
    elif witness_file is not None and last:
        report.warnings.append(f"no witness file {witness_file}: rows cut off the end cannot be detected")
    report.signed = "yes" if signed and not unsigned else "no" if not signed else f"partly ({unsigned} rows unsigned)"
    if key is not None:
        report.key = "ok" if seen["bad_mac"] is None else "WRONG"
        if last and not signed:
            report.key = "unused (no row is signed)"
            found.append(
                Problem(
                    1, "SIGNOFF_AUDIT_KEY is set but no row is signed (signatures stripped, or the proxies run without the key)"
                )
            )
    if seen["bad_mac"] is not None:
        rid = seen["bad_mac"]
        found.append(
            Problem(
                rid,
                f"row {rid}: its signature does not match (rewritten without the key, or "
                "SIGNOFF_AUDIT_KEY is not the key it was signed with)",
            )
        )
    if seen["stripped"] is not None:
        rid = seen["stripped"]
        found.append(
            Problem(rid, f"row {rid} is unsigned after signed rows (signatures stripped, or the key was unset for some writers)")
        )
    report.problem = min(found, key=lambda p: p.row) if found else None  # the earliest place to look
    return report


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
    for key, empty in (("arguments", {}), ("identity", None)):
        try:
            out[key] = json.loads(row[key]) if row.get(key) else empty
        except ValueError:
            pass  # a tampered row; verify() reports it, listing still shows the text
    return out


def who(row: Mapping[str, Any]) -> str:
    """`agent@machine` of a public row ("-" for rows from before identities were kept)."""
    found = row.get("identity")
    if not isinstance(found, Mapping):
        return "-"
    return f"{found.get('agent') or '?'}@{found.get('machine') or '?'}"


class AuditLog:
    """Append, query, verify and export the audit trail of one store."""

    def __init__(self, store: AuditStore):
        self.store = store

    def append(self, call: ToolCall | None = None, decision: str = "allowed", **fields: Any) -> int:
        """Append one row (see `entry` for the fields); returns its id. Blocking (one small commit)."""
        return self.store.append_audit(entry(call, decision, **fields))

    def query(
        self,
        *,
        tool: str | None = None,
        decision: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows oldest first; `tool` is a glob over `server.tool` (or the bare tool name)."""
        rows: Iterator[dict[str, Any]] = self.store.audit_rows(decision=decision, since=since, until=until)
        if tool:
            rows = (
                r
                for r in rows
                if fnmatch.fnmatchcase(f"{r['server']}.{r['tool']}", tool) or fnmatch.fnmatchcase(r["tool"] or "", tool)
            )
        found = [public(r) for r in rows]
        return found[-limit:] if limit else found

    def verify(self) -> tuple[int, Problem | None]:
        """Check the whole chain, the witness and signatures: (rows checked, first problem or None)."""
        report = self.check()
        return report.checked, report.problem

    def check(self) -> Report:
        """The full verdict: chain, the head witness beside the database, signatures."""
        witness = getattr(self.store, "witness", None)
        return check_trail(self.store.audit_rows(), self.store.audit_head(), witness_file=witness, key=audit_key())

    def export_jsonl(self, stream: IO[str]) -> int:
        """Write every row (hashes included, so an export can be checked elsewhere) as JSON lines."""
        count = 0
        for row in self.store.audit_rows():
            stream.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
        return count


RAN = ("allowed", "approved")


class AuditCounter:
    """`count(window, match)`: calls that ran within `window` seconds and satisfy `match(server, tool, args)`.

    The counter `rate:` rules use (see policy/rate.py). A call that ran is an `allowed` or
    `approved` row (observed and remembered calls are `allowed` rows too). Rows are read once per
    window and kept for a short time, so a burst of calls costs one query."""

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time, cache_seconds: float = 0.2):
        self.store = store
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._rows: dict[float, tuple[float, list[tuple[str, str, str, Any]]]] = {}

    def _recent(self, window: float) -> list[tuple[str, str, str, Any]]:
        now = self.clock()
        cached = self._rows.get(window)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        since = now_iso(now - window)
        rows = []
        for decision in RAN:
            for row in self.store.audit_rows(decision=decision, since=since):
                rows.append((row["time"], row["server"], row["tool"], row["arguments"]))
        self._rows[window] = (now, rows)
        return rows

    def count(self, window: float, match: Callable[[str, str, Mapping[str, Any]], bool]) -> int:
        total = 0
        for _time, server, tool, arguments in self._recent(window):
            args = arguments
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    args = {}
            if match(server, tool, args if isinstance(args, dict) else {}):
                total += 1
        return total
