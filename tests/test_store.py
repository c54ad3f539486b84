"""The shared SQLite store: schema, pragmas, first decision wins (across processes), crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from signoff import paths
from signoff.approvals.broker import Broker
from signoff.approvals.store import MIGRATIONS, Resolution, SQLiteStore, open_store
from signoff.errors import AlreadyDecidedError, StoreError, UnknownCallError
from signoff.model import Decision, ToolCall, Verdict

SRC = str(Path(__file__).resolve().parents[1] / "src")
ASK = Decision(Verdict.ASK, "writes need approval", rule="hitl_policies[0]")


def python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def held_call(broker: Broker, **arguments: object) -> str:
    return broker.issue_retry(ToolCall("fs", "write_file", arguments or {"path": "/tmp/x"}, session="s1"), ASK)


def test_store_lives_under_signoff_home_with_wal_and_schema(signoff_home: Path) -> None:
    store = open_store()
    assert store.path == paths.db_path() == signoff_home / "signoff.db"
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"held", "audit", "state", "remembered", "retry_tokens"} <= tables
    local = store._conn()
    assert local.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert local.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_reopening_keeps_data_and_a_newer_schema_is_refused(signoff_home: Path) -> None:
    held_id = held_call(Broker(open_store()))
    assert open_store().get_held(held_id) is not None
    conn = sqlite3.connect(paths.db_path())
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this signoff"):
        open_store()


def test_held_row_carries_the_call(store_url: str | None) -> None:
    broker = Broker(open_store())
    call = ToolCall("fs", "write_file", {"path": "/a", "content": "x"}, session="s9", client="claude-code")
    held_id = broker.issue_retry(call, ASK, "p1", history=[ToolCall("fs", "read_file", {"path": "/a"})])
    held = broker.get(held_id)
    assert held.id.startswith("h-") and len(held.id) == 8
    assert (held.server, held.tool, dict(held.arguments)) == ("fs", "write_file", {"path": "/a", "content": "x"})
    assert (held.rule, held.reason, held.session, held.client) == (
        "hitl_policies[0]",
        "writes need approval",
        "s9",
        "claude-code",
    )
    assert held.session_history == ({"tool": "fs.read_file", "arguments": {"path": "/a"}},)
    assert held.status == "pending" and held.deadline - held.created == pytest.approx(300)
    assert held.args_hash == call.arguments_hash and held.proxy_pid == os.getpid()


def test_first_decision_wins_and_unknown_ids_are_named(store_url: str | None) -> None:
    store = open_store()
    held_id = held_call(Broker(store))
    store.resolve(held_id, Resolution("approved", "alice", "cli"))
    with pytest.raises(AlreadyDecidedError, match=f"{held_id} was already approved by alice \\(cli\\)"):
        store.resolve(held_id, Resolution("denied", "bob", "watch"))
    assert store.get_held(held_id).status == "approved"  # type: ignore[union-attr]
    with pytest.raises(UnknownCallError, match="no held call h-000000"):
        store.resolve("h-000000", Resolution("denied", "bob", "cli"))


RACE = """
import os, sys, time
from pathlib import Path
from signoff.errors import AlreadyDecidedError
from signoff.approvals.store import Resolution, open_store
store = open_store()
go = Path(sys.argv[2])
while not go.exists():  # both processes start, then decide at the same moment
    time.sleep(0.001)
try:
    store.resolve(sys.argv[1], Resolution(sys.argv[3], "p" + str(os.getpid()), "cli"))
except AlreadyDecidedError:
    sys.exit(2)
"""


def test_two_processes_deciding_at_once_exactly_one_wins(store_url: str | None, tmp_path: Path) -> None:
    store = open_store()
    for round_ in range(3):
        held_id = held_call(Broker(store), n=round_)
        go = tmp_path / f"go{round_}"
        env = {**os.environ, "PYTHONPATH": SRC}
        procs = [
            subprocess.Popen([sys.executable, "-c", RACE, held_id, str(go), verdict], env=env)
            for verdict in ("approved", "denied")
        ]
        go.touch()
        codes = sorted(p.wait(timeout=60) for p in procs)
        assert codes == [0, 2]
        held = store.get_held(held_id)
        assert held is not None and held.status in ("approved", "denied")
        decisions = [r["decision"] for r in store.audit_rows() if r["held_id"] == held_id]
        assert decisions == ["held", held.status]  # one decision recorded, the winner's


def test_a_committed_row_survives_kill_9(store_url: str | None) -> None:
    code = """
    import os, signal
    from signoff.approvals.broker import Broker
    from signoff.model import Decision, ToolCall, Verdict
    held_id = Broker().issue_retry(ToolCall("fs", "delete", {"path": "/x"}), Decision(Verdict.ASK, "r"))
    print(held_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
    result = python(code)
    assert result.returncode == -signal.SIGKILL
    held_id = result.stdout.strip()
    held = open_store().get_held(held_id)
    assert held is not None and held.status == "pending"
    assert [r["decision"] for r in open_store().audit_rows()] == ["held"]


def test_unreadable_store_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_text("this is not sqlite" * 100)
    with pytest.raises(StoreError, match="signoff store"):
        SQLiteStore(tmp_path / "not-a-db")


def test_change_token_moves_on_commits_from_anywhere(signoff_home: Path) -> None:
    store = open_store()
    before = store.change_token()
    assert store.change_token() == before
    held_id = held_call(Broker(store))  # our own commit
    after_own = store.change_token()
    assert after_own != before
    python(
        """
    import sys
    from signoff.approvals.store import Resolution, open_store
    open_store().resolve(sys.argv[1], Resolution("denied", "x", "cli"))
    """,
        held_id,
    ).check_returncode()
    assert store.change_token() != after_own


def test_background_checkpoints_keep_commits_from_checkpointing(tmp_path) -> None:
    """The proxy's store never checkpoints inside a commit; a separate checkpoint folds the WAL back."""
    from signoff.approvals.audit import entry
    from signoff.approvals.store import open_store
    from signoff.model import ToolCall

    proxy_store = open_store(tmp_path / "db.sqlite", background_checkpoints=True)
    plain = open_store(tmp_path / "db.sqlite")
    assert proxy_store._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert plain._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] > 0
    for _ in range(50):
        proxy_store.append_audit(entry(ToolCall("s", "t", {"x": 1}), "allowed", by="policy"))
    frames, copied = proxy_store.checkpoint()
    assert frames > 0 and copied == frames
    assert len(list(plain.audit_rows())) == 50
