"""The README's recipe for partitioning a big PostgreSQL audit trail by time range, run as written
while four other stores keep appending: they wait for the swap on the chain head, none fails, no
row is lost, new rows land in the new partition, and the chain verifies across partitions."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from signoff.approvals.audit import AuditLog, now_iso
from signoff.errors import StoreError

pytestmark = pytest.mark.postgres

README = Path(__file__).resolve().parents[1] / "README.md"


def recipe(boundary: str) -> list[str]:
    """The README's partitioning statements, with its example boundary moved to `boundary`."""
    text = README.read_text()
    block = text[text.index("**Partitioning the audit trail**") :]
    sql = re.search(r"```sql\n(.*?)```", block, re.S).group(1)  # type: ignore[union-attr]
    sql = sql.replace("'2026-12-01'", f"'{boundary}'")
    statements = [re.sub(r"^--.*$", "", s, flags=re.M).strip() for s in sql.split(";")]
    return [s for s in statements if s]


def wait_until(condition, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_the_readme_partitioning_recipe_keeps_the_chain(pg_server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_server.url(pg_server.new_schema())
    monkeypatch.setenv("SIGNOFF_STORE", url)
    from pg_server import close_pg_stores
    from signoff.approvals.store import open_store

    store = open_store()
    try:
        for n in range(20):
            store.append_audit({"server": "s", "tool": f"t{n}", "decision": "allowed", "arguments": "{}"})
        stop, appended, failed = threading.Event(), [], []

        def append(k: int) -> None:  # other hosts keep appending while the table is swapped
            own = open_store()
            try:
                while not stop.is_set():
                    appended.append(own.append_audit({"server": "s", "tool": f"w{k}", "decision": "allowed", "arguments": "{}"}))
            except StoreError as exc:
                failed.append(exc)
            finally:
                own.close()

        writers = [threading.Thread(target=append, args=(k,)) for k in range(4)]
        for writer in writers:
            writer.start()
        wait_until(lambda: len(appended) >= 20 or failed)
        boundary = now_iso(time.time() + 5)  # in the future, as the README says: the swap ends before it
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in recipe(boundary):
                conn.execute(statement)
            swapped = len(appended)
            wait_until(
                lambda: failed or conn.execute("SELECT count(*) FROM audit WHERE time >= %s", (boundary,)).fetchone()[0] >= 20
            )
        for n in range(20, 45):
            store.append_audit({"server": "s", "tool": f"t{n}", "decision": "allowed", "arguments": "{}"})
        stop.set()
        for writer in writers:
            writer.join(60)
        assert failed == [] and 20 <= swapped < len(appended)
        total = 45 + len(appended)
        with psycopg.connect(url, autocommit=True) as conn:
            kind = conn.execute("SELECT c.relkind FROM pg_class c WHERE c.oid = 'audit'::regclass").fetchone()[0]
            where = dict(conn.execute("SELECT tableoid::regclass::text, count(*) FROM audit GROUP BY 1").fetchall())
        assert kind == "p"  # a partitioned table now
        assert where.get("audit_before_2026_12", 0) >= 20 and sum(where.values()) == total
        assert len(where) == 2  # the old rows, and the new ones in audit_2026_12 (after 2027: audit_later)
        assert [r["id"] for r in store.audit_rows()] == list(range(1, total + 1))
        assert AuditLog(store).verify() == (total, None)
        verify = subprocess.run([sys.executable, "-m", "signoff", "audit", "verify"], capture_output=True, text=True, timeout=120)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        # tampering with an old partition's row is still found
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE audit SET tool = 'changed' WHERE id = 3")
        assert AuditLog(store).verify()[1] is not None
    finally:
        store.close()
        close_pg_stores()
