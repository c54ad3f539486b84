"""Attack: delete or replace the store under running proxies. Before the fix they kept the old inode:
`signoff kill` did not reach them and their held calls vanished from every approver's view. Now a
proxy notices (inode check on the kill-switch poll and on every write), reopens the store at the
path, denies the calls it held in the old one, and obeys the kill switch in the new one."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from conftest import connect, fake_server, through_signoff
from security.conftest import call_until_it_runs, wait_for_pending
from signoff.approvals.audit import AuditLog
from signoff.approvals.store import open_store

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

POLICY = "hitl_policies:\n  - tool: '*.write_file'\n    decision: ask\n    reason: writes need a look\n"


def delete_store(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def replace_store(db: Path) -> None:
    """A new, valid SQLite file renamed over the path (the old -wal/-shm removed, as a copy tool would)."""
    fresh = db.with_name("fresh.db")
    sqlite3.connect(fresh).execute("CREATE TABLE x (y)").connection.close()
    os.replace(fresh, db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def signoff_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signoff", *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize("attack", [delete_store, replace_store], ids=["deleted", "replaced"])
async def test_store_swapped_under_a_running_proxy(attack, signoff_home: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    db = signoff_home / "signoff.db"
    target = tmp_path / "held-write"
    async with connect(through_signoff(fake_server(), "--policy", str(policy))) as client:
        with anyio.fail_after(90):
            assert not (await client.call_tool("echo", {"text": "store is open"})).is_error
            async with anyio.create_task_group() as tg:
                box: dict = {}

                async def held_call() -> None:
                    box["result"] = await client.call_tool("write_file", {"path": str(target), "content": "x"})

                tg.start_soon(held_call)
                old = await wait_for_pending(db)
                attack(db)
            # the call held in the old store is not run and not left hanging
            result = box["result"]
            assert result.is_error and not target.exists()
            assert "store was replaced" in result.content[0].text

            # `signoff kill` on the store now at the path reaches the running proxy
            assert signoff_cli("kill", "--reason", "stop everything").returncode == 0
            killed = await client.call_tool("echo", {"text": "after kill"})
            assert killed.is_error and "stop everything" in killed.content[0].text
            assert signoff_cli("resume").returncode == 0

            # a new held call is visible to approvers in the new store, and their decision applies
            async with anyio.create_task_group() as tg:
                tg.start_soon(held_call)
                new = await wait_for_pending(db)
                assert new.id != old.id
                assert signoff_cli("approve", new.id).returncode == 0
            assert not box["result"].is_error and target.exists()

    store = open_store(db)
    try:
        decisions = [(r["decision"], r["held_id"]) for r in AuditLog(store).query()]
    finally:
        store.close()
    assert ("denied", old.id) in decisions  # the old call's end is on the record approvers see
    assert ("approved", new.id) in decisions


def garbage_over_store(db: Path) -> None:
    garbage = db.with_name("garbage")
    garbage.write_bytes(b"this is not a database" * 400)
    os.replace(garbage, db)


def new_db_over_store_keeping_its_wal(db: Path) -> None:
    fresh = db.with_name("fresh.db")
    sqlite3.connect(fresh).execute("CREATE TABLE x (y)").connection.close()
    os.replace(fresh, db)


@pytest.mark.parametrize("attack", [garbage_over_store, new_db_over_store_keeping_its_wal], ids=["garbage", "new_file_old_wal"])
async def test_store_replaced_inconsistently_refuses_every_call_until_repaired(
    attack, signoff_home: Path, tmp_path: Path
) -> None:
    """Not a database any more, or a new file that SQLite would read through the old one's WAL:
    no call runs (the kill switch cannot be read, so it counts as on) until the files are sorted out."""
    db = signoff_home / "signoff.db"
    async with connect(through_signoff(fake_server())) as client:
        with anyio.fail_after(60):
            assert not (await client.call_tool("echo", {"text": "store is open"})).is_error
            attack(db)
            target = tmp_path / "refused"
            result = await client.call_tool("write_file", {"path": str(target), "content": "x"})
            assert result.is_error and not target.exists()
            assert "not a SQLite database" in result.content[0].text or "move them aside" in result.content[0].text
            for suffix in ("-wal", "-shm"):  # the person moves the stale files aside
                os.replace(f"{db}{suffix}", tmp_path / f"stale{suffix}")
            if attack is garbage_over_store:
                os.replace(db, tmp_path / "garbage")
            await call_until_it_runs(client, tmp_path)
