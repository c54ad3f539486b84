"""Attacks on the audit trail by someone with write access to the database: cut the last rows
together with the `audit_head` state row, rewrite the chain consistently, strip or forge signatures.
`signoff audit verify` must name what was cut; with SIGNOFF_AUDIT_KEY a full rewrite is found too."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from signoff.approvals.audit import GENESIS, AuditLog, row_hash
from signoff.approvals.store import open_store
from signoff.model import ToolCall


def make_trail(db: Path, rows: int = 10, *, key: str | None = None) -> None:
    old = os.environ.pop("SIGNOFF_AUDIT_KEY", None)
    if key:
        os.environ["SIGNOFF_AUDIT_KEY"] = key
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        store = open_store(db)
        for i in range(rows):
            AuditLog(store).append(ToolCall("fs", "write_file", {"path": f"/f{i}"}), "allowed")
        store.close()
    finally:
        os.environ.pop("SIGNOFF_AUDIT_KEY", None)
        if old is not None:
            os.environ["SIGNOFF_AUDIT_KEY"] = old


def verify(*, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SIGNOFF_AUDIT_KEY"}
    if key:
        env["SIGNOFF_AUDIT_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "signoff", "audit", "verify"], capture_output=True, text=True, timeout=60, env=env
    )


def cut_last_rows(db: Path, keep: int) -> None:
    """What the old check missed: delete the tail and point `audit_head` at the new last row."""
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit WHERE id > ?", (keep,))
    last = conn.execute("SELECT id, hash FROM audit WHERE id = ?", (keep,)).fetchone()
    conn.execute("UPDATE state SET value = ? WHERE key = 'audit_head'", (json.dumps(list(last)),))
    conn.commit()
    conn.close()


def rewrite_chain(db: Path, change: dict[int, str]) -> None:
    """A consistent rewrite: new arguments in some rows, every hash recomputed, signatures dropped."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    prev = GENESIS
    for row in [dict(r) for r in conn.execute("SELECT * FROM audit ORDER BY id")]:
        row["arguments"] = change.get(row["id"], row["arguments"])
        row["prev_hash"] = prev
        row["hash"] = prev = row_hash(row)
        conn.execute(
            "UPDATE audit SET arguments = ?, prev_hash = ?, hash = ?, mac = NULL WHERE id = ?",
            (row["arguments"], row["prev_hash"], row["hash"], row["id"]),
        )
    conn.execute("UPDATE state SET value = ? WHERE key = 'audit_head'", (json.dumps([row["id"], prev]),))
    conn.commit()
    conn.close()


def test_cutting_the_last_rows_and_the_head_row_is_named(signoff_home: Path) -> None:
    db = signoff_home / "signoff.db"
    make_trail(db)
    assert verify().returncode == 0
    cut_last_rows(db, keep=7)
    done = verify()
    assert done.returncode == 1
    assert "rows 8–10 are missing" in done.stderr and "signoff.audit-head" in done.stderr


def test_consistent_rewrite_of_the_database_is_found_by_the_witness(signoff_home: Path) -> None:
    db = signoff_home / "signoff.db"
    make_trail(db)
    rewrite_chain(db, {3: json.dumps({"path": "/innocent"})})
    done = verify()
    assert done.returncode == 1 and "row 10 is not the row the witness" in done.stderr


def test_rewrite_of_database_and_witness_is_found_only_with_the_key(signoff_home: Path) -> None:
    db = signoff_home / "signoff.db"
    make_trail(db, key="k1")
    ok = verify(key="k1")
    assert ok.returncode == 0 and "signed: yes, key ok" in ok.stdout, ok.stdout + ok.stderr
    rewrite_chain(db, {3: json.dumps({"path": "/innocent"})})
    witness = signoff_home / "signoff.audit-head"
    last = sqlite3.connect(db).execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    witness.write_text(f"start 0 {GENESIS}\n{last[0]} {last[1]} -\n")  # the witness rewritten to match
    without_key = verify()
    assert without_key.returncode == 0  # the documented limit: without the key this cannot be told
    with_key = verify(key="k1")
    assert with_key.returncode == 1 and "no row is signed" in with_key.stderr


def tamper(db: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql, params)
    conn.close()


def test_forged_signatures_fail_with_the_right_key(signoff_home: Path) -> None:
    db = signoff_home / "signoff.db"
    make_trail(db, key="k1")
    tamper(db, "UPDATE audit SET mac = ? WHERE id = 4", "0" * 64)
    done = verify(key="k1")
    assert done.returncode == 1 and "row 4: its signature does not match" in done.stderr
    wrong = verify(key="other")
    assert wrong.returncode == 1 and "key WRONG" in wrong.stderr


def test_stripping_signatures_from_the_tail_is_named(signoff_home: Path) -> None:
    db = signoff_home / "signoff.db"
    make_trail(db, key="k1")
    tamper(db, "UPDATE audit SET mac = NULL WHERE id >= 6")
    done = verify(key="k1")
    assert done.returncode == 1 and "row 6 is unsigned after signed rows" in done.stderr


def test_deleting_the_witness_with_the_rows_is_reported(signoff_home: Path) -> None:
    """The documented limit: with the witness deleted too, a cut is not proven, but `verify` warns
    that the witness restarted (at the row the attacker left)."""
    db = signoff_home / "signoff.db"
    make_trail(db)
    cut_last_rows(db, keep=7)
    (signoff_home / "signoff.audit-head").unlink()
    done = verify()
    assert "the witness" in done.stderr and "(re)started at row 7" in done.stderr
