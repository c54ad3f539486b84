"""Live policy reloading: edit the policy file while agents run, and the next call sees it.

The file's modification time is checked at most once per `interval` seconds, on the calling
path (one `stat`), so no thread or task is needed. A broken edit never unguards the proxy: the
last good policy stays in force and the log says why the new one was refused — whatever the
failure (not only a ConfigError). A file too large or nested too deeply is refused before the
YAML parser sees it: 100,000 nested `[` keep a parser busy for seconds on the calling path.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from signoff.errors import ConfigError, PolicyError

log = logging.getLogger("signoff.policy")

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
_BRACKETS = re.compile(rb"[\[\]{}]")


def check_shape(path: str) -> None:
    """Refuse a policy file larger than 1 MiB or with flow collections nested deeper than 64."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise PolicyError(f"the policy file is larger than {MAX_BYTES >> 20} MiB", path=path)
    depth = 0
    for bracket in _BRACKETS.findall(data):
        depth = depth + 1 if bracket in b"[{" else max(0, depth - 1)
        if depth > MAX_DEPTH:
            raise PolicyError(f"lists or maps nested deeper than {MAX_DEPTH} levels", path=path)


class PolicyHolder:
    """Holds the policy in force; `get()` returns it, reloading the file when it changed."""

    def __init__(
        self, source: str, loader: Callable[[str], Any], *, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ):
        self.source = source
        self.loader = loader
        self.interval = interval
        self.clock = clock
        self.policy = self._load(source)  # a broken policy at start-up stops signoff (one clean line)
        self.path = source if os.path.isfile(source) else None
        self._stamp = self._stat()
        self._next_check = clock() + interval
        self.reloads = 0
        self.last_error: str | None = None

    def _load(self, source: str) -> Any:
        """The loader, behind a size/nesting check; any failure becomes a ConfigError naming the file."""
        try:
            if os.path.isfile(source):
                check_shape(source)
            return self.loader(source)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - decode, recursion, memory, I/O: all mean "not loaded"
            raise PolicyError(_describe(source, exc)) from exc

    def _stat(self) -> tuple[int, int, int, int] | None:
        """What identifies one version of the file: a rewrite, a rename over it or a new inode."""
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)

    def get(self) -> Any:
        if self.path is not None and self.clock() >= self._next_check:
            self._next_check = self.clock() + self.interval
            self.check_now()
        return self.policy

    def check_now(self) -> bool:
        """Reload if the file changed; True when a new policy took effect."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            if stamp is None and self.path is not None and self.last_error is None:
                self.last_error = f"{self.path}: cannot read the policy file; keeping the last good policy"
                log.error("%s", self.last_error)
            return False
        self._stamp = stamp
        try:
            policy = self._load(self.path)  # type: ignore[arg-type]
        except ConfigError as exc:  # any failure: bytes that are not UTF-8, RecursionError, MemoryError,
            # a file removed or replaced mid-read, a directory in its place, EACCES...
            self.last_error = str(exc)
            log.error("policy edit refused, keeping the last good policy (%s): %s", str(self.policy.hash)[:12], self.last_error)
            return False
        self.policy = policy
        self.reloads += 1
        self.last_error = None
        log.info("policy %s reloaded (%s)", self.path, str(policy.hash)[:12])
        return True


def _describe(path: str, exc: BaseException) -> str:
    """One line for the log: a ConfigError already names the file; anything else gets it added."""
    if isinstance(exc, ConfigError):
        return str(exc)
    detail = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{path}: cannot load the policy ({type(exc).__name__}{': ' + detail if detail else ''})"
