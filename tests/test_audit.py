"""The audit trail: every row chained, tampering and removal named, concurrent appends stay linear."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signoff import paths
from signoff.approvals.audit import GENESIS, AuditLog, entry, now_iso, parse_since, row_hash
from signoff.approvals.store import Store
from signoff.model import ToolCall, canonical_json

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def log(store: Store) -> AuditLog:
    return AuditLog(store)


def fill(log: AuditLog, n: int = 6) -> None:
    for i in range(n):
        call = ToolCall("fs", "write_file" if i % 2 else "read_file", {"path": f"/f{i}"}, session="s", client="c")
        log.append(
            call,
            "allowed" if i % 2 == 0 else "denied",
            reason=f"r{i}",
            duration_ms=1.5,
            policy_hash="ph",
            rule="hitl_policies[1]",
        )


class Raw:
    """SQL straight on the test's store, past signoff: what an attacker with database access does."""

    def __init__(self) -> None:
        self.url = os.environ.get("SIGNOFF_STORE")

    def execute(self, query: str, params: tuple[object, ...] = ()) -> list[dict[str, object]]:
        if self.url:
            import psycopg
            from psycopg.rows import dict_row

            with psycopg.connect(self.url, autocommit=True, row_factory=dict_row) as conn:
                cursor = conn.execute(query.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
        conn = sqlite3.connect(paths.db_path(), isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(query, params).fetchall()]
        finally:
            conn.close()


def db() -> Raw:
    return Raw()


def test_rows_are_chained_and_carry_every_field(log: AuditLog) -> None:
    fill(log, 3)
    rows = list(log.store.audit_rows())
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == GENESIS
    assert rows[1]["prev_hash"] == rows[0]["hash"] and rows[2]["prev_hash"] == rows[1]["hash"]
    first = rows[0]
    assert first["hash"] == row_hash(first)
    assert (first["server"], first["tool"], first["decision"], first["channel"]) == ("fs", "read_file", "allowed", "policy")
    assert json.loads(first["arguments"]) == {"path": "/f0"}
    assert first["decided_by"] and first["duration_ms"] == 1.5 and first["policy_hash"] == "ph"
    assert (first["rule"], first["session"], first["client"]) == ("hitl_policies[1]", "s", "c")
    assert first["time"].endswith("Z") and len(first["time"]) == len(now_iso())
    assert log.verify() == (3, None)


def test_unknown_decision_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown audit decision"):
        entry(ToolCall("a", "b"), "maybe")


def test_verify_names_a_changed_row(log: AuditLog) -> None:
    fill(log)
    db().execute("UPDATE audit SET reason = 'nothing to see' WHERE id = 4")
    _checked, problem = log.verify()
    assert problem is not None and problem.row == 4
    assert str(problem) == "row 4 was changed (its content no longer matches its hash)"


def test_verify_names_a_deleted_row(log: AuditLog) -> None:
    fill(log)
    db().execute("DELETE FROM audit WHERE id = 3")
    _, problem = log.verify()
    assert problem is not None and problem.row == 3
    assert str(problem) == "row 3 is missing (ids jump 2→4)"


def test_verify_names_rows_cut_off_the_end_and_appending_keeps_the_gap(log: AuditLog) -> None:
    fill(log)
    db().execute("DELETE FROM audit WHERE id >= 5")
    _, problem = log.verify()
    assert problem is not None and str(problem).startswith("rows 5–6 are missing")
    fill(log, 1)  # the next row is 7: the gap stays visible
    _, problem = log.verify()
    assert problem is not None and str(problem) == "rows 5–6 are missing (ids jump 4→7)"


def test_verify_catches_a_row_rewritten_with_a_fresh_hash(log: AuditLog) -> None:
    fill(log)
    conn = db()
    (row,) = conn.execute("SELECT * FROM audit WHERE id = 2")
    row["decision"] = "allowed"
    conn.execute("UPDATE audit SET decision = ?, hash = ? WHERE id = 2", (row["decision"], row_hash(row)))
    _, problem = log.verify()
    assert problem is not None and problem.row == 3
    assert str(problem).startswith("row 3: hash chain broken") and "row 2 may have been rewritten" in str(problem)


def test_verify_of_an_empty_and_an_intact_trail(log: AuditLog) -> None:
    assert log.verify() == (0, None)
    fill(log, 10)
    assert log.verify() == (10, None)


def test_query_filters_by_tool_glob_decision_and_time(log: AuditLog) -> None:
    fill(log)
    assert len(log.query()) == 6
    writes = log.query(tool="fs.write_*")
    assert [r["id"] for r in writes] == [2, 4, 6] and writes[0]["arguments"] == {"path": "/f1"}
    assert [r["id"] for r in log.query(tool="read_file")] == [1, 3, 5]
    assert [r["id"] for r in log.query(decision="denied", tool="*.write_file")] == [2, 4, 6]
    assert log.query(since=parse_since("1h")) == log.query()
    assert log.query(since=now_iso(time.time() + 60)) == []
    assert [r["id"] for r in log.query(limit=2)] == [5, 6]


def test_parse_since_accepts_spans_and_iso_times() -> None:
    now = 1_800_000_000.0
    assert parse_since("1h", now=now) == now_iso(now - 3600)
    assert parse_since("30m", now=now) == now_iso(now - 1800)
    assert parse_since("2026-11-25T10:00:00Z") == "2026-11-25T10:00:00.000000Z"
    with pytest.raises(ValueError, match="neither a time"):
        parse_since("yesterday")


def test_export_jsonl_writes_every_row_with_its_hashes(log: AuditLog) -> None:
    fill(log, 4)
    out = io.StringIO()
    assert log.export_jsonl(out) == 4
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["id"] for line in lines] == [1, 2, 3, 4]
    assert all(row_hash(line) == line["hash"] for line in lines)  # checkable outside signoff


APPENDER = """
import sys
from signoff.approvals.audit import AuditLog
from signoff.model import ToolCall
from signoff.approvals.store import open_store
log = AuditLog(open_store())
for i in range(int(sys.argv[1])):
    log.append(ToolCall("srv", "tool", {"writer": sys.argv[2], "i": i}), "allowed")
"""


def test_many_processes_appending_at_once_keep_one_chain(log: AuditLog) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, "60", str(n)], env=env) for n in range(4)]
    fill(log, 20)  # and this process too
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert log.verify() == (260, None)
    ids = [r["id"] for r in log.store.audit_rows()]
    assert ids == list(range(1, 261))


def test_append_cost_per_row_is_small(log: AuditLog) -> None:
    """Measured, and bounded loosely: a row is one small WAL commit (tens to a few hundred µs)."""
    call = ToolCall("fs", "read_file", {"path": "/etc/hosts"})
    started = time.perf_counter()
    for _ in range(300):
        log.append(call, "allowed", duration_ms=0.2)
    per_row_us = (time.perf_counter() - started) / 300 * 1e6
    print(f"audit append: {per_row_us:.0f} µs per row")
    assert per_row_us < 5000
    assert canonical_json({"b": 1, "a": 2}) == '{"a":2,"b":1}'
