"""A real PostgreSQL server for the tests: initdb + pg_ctl under a temporary directory.

PostgreSQL refuses to run as root, so when the tests run as root (CI does) the server runs as
the `postgres` user (Debian's package creates it; made here with useradd if missing) in a
directory chowned to it. Each test gets its own schema (`search_path` in the URL), so tests
never see each other's rows and one server serves the whole session.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import psycopg

SERVER_USER = "postgres"


def bindir() -> Path | None:
    """Where initdb and pg_ctl are: `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin."""
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if found:
            candidates.append(Path(found))
    candidates += [
        Path(p)
        for p in sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
            reverse=True,
        )
    ]
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
    return ["runuser", "-u", SERVER_USER, "--"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """One throwaway cluster: `start()`, `url()` per schema, `stop()`."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="signoff-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.prefix = _as_server_user()
        if self.prefix:
            server = pwd.getpwnam(SERVER_USER)
            os.chown(self.dir, server.pw_uid, server.pw_gid)
        os.chmod(self.dir, 0o755)

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}")

    def init(self) -> PgServer:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "signoff",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        return self

    def start(self) -> PgServer:
        options = f"-k {self.dir} -p {self.port} -h 127.0.0.1 -c max_connections=300 -c fsync=off -c shared_buffers=32MB"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "-t", "60", "start"
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, schema: str | None = None) -> str:
        url = f"postgresql://signoff@/postgres?host={quote(str(self.dir))}&port={self.port}"
        if schema:
            url += "&options=" + quote(f"-csearch_path={schema}")
        return url

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url(), autocommit=True)

    def new_schema(self) -> str:
        """A fresh, empty schema: one test's store."""
        name = f"t_{secrets.token_hex(6)}"
        with self.admin() as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return name


def close_pg_stores() -> None:
    """Every PostgreSQL store a test opened keeps connections and threads: close them after it."""
    from signoff.approvals.store_pg import close_all

    close_all()
