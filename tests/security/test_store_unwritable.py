"""Attack: make the store unwritable (disk full, read-only, locked by another process) so that
allowed calls run with no audit row, or the session stalls. No call may run without its record,
and a locked store must refuse within the proxy's short bound."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from conftest import connect, fake_server, through_signoff
from security.conftest import LockHolder, call_until_it_runs, fill, mount
from signoff.approvals.audit import AuditLog
from signoff.approvals.store import open_store

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def audited_paths(home: Path) -> set[str]:
    """The `path` argument of every write_file call the audit trail says was allowed."""
    store = open_store(home / "signoff.db")
    try:
        return {r["arguments"].get("path") for r in AuditLog(store).query(tool="*.write_file", decision="allowed")}
    finally:
        store.close()


async def call_until_refused(client, out: Path, limit: int = 400) -> tuple[int, str]:
    """Make write_file calls until one is refused; every call that ran must have written its file."""
    for i in range(limit):
        target = out / f"f{i}"
        result = await client.call_tool("write_file", {"path": str(target), "content": "x"})
        if result.is_error:
            assert not target.exists(), "a refused call ran"
            return i, result.content[0].text
        assert target.exists()
    raise AssertionError(f"no call was refused in {limit} calls")


async def test_disk_full_refuses_calls_whose_audit_row_cannot_be_written(tmpfs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env = {"SIGNOFF_HOME": str(tmpfs)}
    async with connect(through_signoff(fake_server()), env=env) as client:
        with anyio.fail_after(120):
            assert not (await client.call_tool("write_file", {"path": str(out / "first"), "content": "x"})).is_error
            filler = fill(tmpfs)
            refused_at, text = await call_until_refused(client, out)
            assert "not run: signoff could not write its audit record" in text and "full" in text
            assert "Tell the user to free disk space" in text
            filler.unlink()
            again = await client.call_tool("write_file", {"path": str(out / "after"), "content": "x"})
            assert not again.is_error
    ran = {str(out / "first"), str(out / "after")} | {str(out / f"f{i}") for i in range(refused_at)}
    assert ran <= audited_paths(tmpfs), "a call ran without its audit row"


async def test_read_only_store_refuses_calls_whose_audit_row_cannot_be_written(tmpfs: Path, tmp_path: Path) -> None:
    """The store on a file system remounted read-only (as root, chmod 0444 would not stop us): the
    proxy still serves, refuses every call with the reason, and recovers once it is writable."""
    out = tmp_path / "out"
    out.mkdir()
    store = open_store(tmpfs / "signoff.db")
    AuditLog(store).append(None, "allowed", server="setup", tool="x")
    store.close()
    assert mount("-o", "remount,ro", str(tmpfs)).returncode == 0
    env = {"SIGNOFF_HOME": str(tmpfs)}
    async with connect(through_signoff(fake_server()), env=env) as client:
        with anyio.fail_after(60):
            target = out / "while-ro"
            result = await client.call_tool("write_file", {"path": str(target), "content": "x"})
            assert result.is_error and not target.exists()
            assert "could not write its audit record" in result.content[0].text
            assert "Tell the user to make the signoff store writable" in result.content[0].text
            assert mount("-o", "remount,rw", str(tmpfs)).returncode == 0
            target = await call_until_it_runs(client, out)  # the store is reopened within a second
    assert str(target) in audited_paths(tmpfs)


async def test_write_lock_held_by_another_process_refuses_within_the_bound(signoff_home: Path, tmp_path: Path) -> None:
    env = {"SIGNOFF_STORE_WAIT_MS": "300"}
    target = tmp_path / "locked"
    async with connect(through_signoff(fake_server()), env=env) as client:
        with anyio.fail_after(60):
            assert not (await client.call_tool("echo", {"text": "warm"})).is_error
            holder = LockHolder(signoff_home / "signoff.db")
            try:
                start = time.monotonic()
                result = await client.call_tool("write_file", {"path": str(target), "content": "x"})
                elapsed = time.monotonic() - start
                assert result.is_error and not target.exists()
                assert "could not write its audit record" in result.content[0].text
                assert "end the program holding the signoff store's write lock" in result.content[0].text
                assert elapsed < 2.5, f"the call waited {elapsed:.2f}s for the lock (bound: 0.3s)"
            finally:
                holder.release()
            assert not (await client.call_tool("write_file", {"path": str(target), "content": "x"})).is_error
    assert json.loads(json.dumps(sorted(audited_paths(signoff_home)))) == [str(target)]
