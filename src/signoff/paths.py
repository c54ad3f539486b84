"""Where signoff keeps its shared state: one directory, `SIGNOFF_HOME`.

Every proxy process, the CLI and the web page on a machine meet in this directory (the SQLite
store, the log file). Tests point `SIGNOFF_HOME` at a temporary directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def home() -> Path:
    """The state directory, created on first use (mode 0700: it holds call arguments)."""
    env = os.environ.get("SIGNOFF_HOME")
    if env:
        path = Path(env).expanduser()
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / "signoff"
    elif os.name == "nt":
        path = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "signoff"
    else:
        path = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "signoff"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _owner_only(path, 0o700)  # an existing home made with a looser umask is tightened
    return path


def _owner_only(path: Path, mode: int) -> None:
    """chmod to `mode` if it is looser and the path is ours (never someone else's file)."""
    try:
        st = os.stat(path)
        if st.st_mode & 0o777 & ~mode and st.st_uid == os.getuid():
            os.chmod(path, mode)
    except (OSError, AttributeError):  # no getuid (Windows) or it went away: nothing to tighten
        pass


def secure_file(path: Path, *, create: bool = True) -> None:
    """Make `path` owner-only (0600) whatever the umask: created so, or tightened if it exists."""
    if create:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError:
            return  # the caller's own open reports the problem in its words
    _owner_only(path, 0o600)


def db_path() -> Path:
    """The shared SQLite database."""
    return home() / "signoff.db"


def log_path() -> Path:
    """The log file every proxy process appends to."""
    return home() / "signoff.log"
