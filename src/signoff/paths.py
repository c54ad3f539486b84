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
    return path


def db_path() -> Path:
    """The shared SQLite database."""
    return home() / "signoff.db"


def log_path() -> Path:
    """The log file every proxy process appends to."""
    return home() / "signoff.log"
