"""Is the proxy that holds a call still there? An OS lock answers exactly, even after kill -9.

Each proxy process takes an exclusive `flock` on its own lease file under the store's directory
(`proxies/<host>-<pid>-<random>.lock`) before it holds any call, and keeps it for its lifetime.
The kernel drops the lock when the process ends, however it ends. Anyone else (the CLI, the page,
another proxy) asks with a non-blocking shared lock: refused means the proxy is alive; granted
means it is gone. `flock` locks belong to the open file, so the check works from inside the
proxy's own process too (where a POSIX `fcntl` lock would not, and would even drop the lease).

A dead pid settles it at once; a live pid may have been reused, so the lease decides. A call
held before leases existed (no lease path) has only the pid.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any

from signoff import paths

log = logging.getLogger("signoff.liveness")

LEASE_DIR = "proxies"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


class ProxyLease:
    """This process's lease: held (locked) from creation until `release()` or process exit."""

    def __init__(self, directory: Path):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}.lock"
        building = self.path.with_suffix(
            ".new"
        )  # locked before it gets its name: `*.lock` is never unlocked while its owner lives
        fd = os.open(building, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(building, self.path)
        except OSError:
            os.close(fd)
            building.unlink(missing_ok=True)
            raise
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the lease up (a clean exit, after this proxy's calls were closed)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def remove_stale_leases(directory: Path) -> int:
    """Delete the lease files of dead proxies (kill -9 leaves them); returns how many."""
    removed = 0
    for path in directory.glob("*.lock"):
        if not _locked(path):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def lease_dir(store: Any) -> Path:
    """Leases live beside the store they refer to (so a test's store gets its own)."""
    path = getattr(store, "path", None)
    return (Path(path).parent if path is not None else paths.home()) / LEASE_DIR


def proxy_gone(held: Any) -> str | None:
    """Why the proxy holding `held` is gone, or None if it is (or may be) alive.

    Only calls held on this host can be checked; elsewhere the answer is "may be alive".
    """
    if held.proxy_host and held.proxy_host != socket.gethostname():
        return None
    if held.proxy_pid is not None and not pid_alive(held.proxy_pid):
        return f"the proxy process {held.proxy_pid} that held it is gone: it has exited"
    lease = getattr(held, "proxy_lease", None)
    if lease and not _locked(Path(lease)):  # the pid may live on, reused by another process
        return f"the proxy process {held.proxy_pid} that held it is gone"
    return None


def _locked(path: Path) -> bool:
    """True while some process holds the lease's exclusive lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # released by a clean exit (which closed its calls first)
    except OSError as exc:  # cannot tell (permissions): assume alive, never abandon on a guess
        log.warning("cannot check proxy lease %s: %s", path, exc)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        log.warning("cannot check proxy lease %s: %s", path, exc)
        return True
    else:
        return False
    finally:
        os.close(fd)
