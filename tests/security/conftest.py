"""Helpers for the security tests: real faults (a tiny tmpfs, a read-only remount, another process
holding the store's write lock), and bounded waits on the shared store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from signoff.approvals.broker import Broker
from signoff.approvals.store import HeldCall, open_store


def mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (a real file system that can fill up or go read-only); root only."""
    point = tmp_path / "tmpfs"
    point.mkdir()
    if os.geteuid() != 0 or mount("-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(point)).returncode:
        pytest.skip("needs root to mount a tmpfs")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Write until the file system says it is full (ENOSPC); returns the filler to remove later."""
    filler = directory / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


async def wait_for_pending(path: Path | None = None, timeout: float = 30) -> HeldCall:
    """The first held call in the store at `path` (bounded wait, polling)."""
    broker = Broker(open_store(path))
    try:
        with anyio.fail_after(timeout):
            while not (pending := broker.pending()):
                await anyio.sleep(0.02)
        return pending[0]
    finally:
        broker.store.close()


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("released", flush=True)
"""


class LockHolder:
    """Another process that holds the store's write lock (BEGIN IMMEDIATE) until released."""

    def __init__(self, db: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


async def call_until_it_runs(client, out: Path, *, attempts: int = 200) -> Path:
    """write_file calls until one runs (the store recovered); each refused one must not have run."""
    for i in range(attempts):
        target = out / f"after{i}"
        result = await client.call_tool("write_file", {"path": str(target), "content": "x"})
        if not result.is_error:
            assert target.exists()
            return target
        assert not target.exists(), "a refused call ran"
        await anyio.sleep(0.05)  # bounded: `attempts` polls of a recovering store
    raise AssertionError(f"no call ran in {attempts} attempts")
