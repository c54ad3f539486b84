"""Logging to stderr and to a rotating file under SIGNOFF_HOME; never to stdout.

In stdio mode stdout is the MCP channel, so `protect_stdout()` also moves file descriptor 1 out
of reach: a stray print from any library lands on stderr instead of corrupting the protocol.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from signoff.termsafe import SafeFormatter

FORMAT = "%(asctime)s signoff[%(process)d] %(levelname)s %(name)s: %(message)s"


class SecretsOut(SafeFormatter):
    """Every log line passes through redaction: no page token, bearer credential or key in a log,
    whichever module wrote it (always on: a log is not where a person approves anything). Its
    message is escaped first (SafeFormatter): model-supplied names cannot paint on a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        from signoff.redact import redact_text

        return redact_text(super().format(record))


class OwnerOnlyFileHandler(logging.handlers.RotatingFileHandler):
    """The log file (and each rotated one) is created 0600 whatever the umask, and tightened if older."""

    def _open(self):
        from pathlib import Path

        from signoff import paths

        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        paths.secure_file(Path(self.baseFilename), create=False)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def setup(level: str | None = None, *, to_file: bool = True) -> None:
    """Configure the `signoff` logger once per process."""
    from signoff import paths

    name = (level or os.environ.get("SIGNOFF_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger("signoff")
    root.setLevel(getattr(logging, name, logging.INFO))
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = SecretsOut(FORMAT)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(formatter)
    root.addHandler(stderr)
    if to_file:
        try:
            handler = OwnerOnlyFileHandler(paths.log_path(), maxBytes=5_000_000, backupCount=3)
        except OSError as exc:
            root.warning("cannot write the log file (%s); logging to stderr only", exc)
        else:
            handler.setFormatter(formatter)
            root.addHandler(handler)


def protect_stdout() -> int:
    """Keep a private copy of stdout for MCP frames and point fd 1 (and sys.stdout) at stderr."""
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return private
