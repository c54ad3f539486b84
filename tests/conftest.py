"""Shared fixtures: an isolated SIGNOFF_HOME, and MCP clients connected directly or through signoff."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules" / "@modelcontextprotocol"
CONNECT_TIMEOUT = 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def signoff_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state directory (and the SQLite store in it, unless it asks for `store`)."""
    home = tmp_path / "signoff-home"
    monkeypatch.setenv("SIGNOFF_HOME", str(home))
    monkeypatch.delenv("SIGNOFF_STORE", raising=False)
    return home


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One real PostgreSQL server for the session (initdb + pg_ctl as a non-root user)."""
    from pg_server import PgServer, bindir

    found = bindir()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL binaries (initdb, pg_ctl): .ci/run must `apt-get install postgresql`")
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) found: install Debian's `postgresql` package")
    server = PgServer(found).init().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, signoff_home: Path, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The backend every `open_store()` of this test (and of the processes it starts) uses: the
    SQLite file under SIGNOFF_HOME, or a fresh schema on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return None
    server = request.getfixturevalue("pg_server")
    url = server.url(server.new_schema())
    monkeypatch.setenv("SIGNOFF_STORE", url)
    from pg_server import close_pg_stores

    request.addfinalizer(close_pg_stores)
    return url


@pytest.fixture
def store(store_url: str | None) -> Iterator[Any]:
    """The shared store, on each backend in turn (the tests using it run twice)."""
    from signoff.approvals.store import open_store

    opened = open_store()
    yield opened
    opened.close()


def free_port() -> int:
    """A port nobody listens on right now (for servers that cannot be told to pick one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def npm_server(package: str, *args: str) -> list[str]:
    """Command line of an npm MCP server installed by `npm ci` (see .ci/run)."""
    entry = NODE_MODULES / package / "dist" / "index.js"
    if not entry.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{entry} is missing: .ci/run must `npm ci` the test servers")
        pytest.skip(f"npm package @modelcontextprotocol/{package} not installed (run `npm ci`)")
    return [shutil.which("node") or "node", str(entry), *args]


def everything() -> list[str]:
    return npm_server("server-everything", "stdio")


def time_server() -> list[str]:
    return [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]


def git_server(repo: Path) -> list[str]:
    return [sys.executable, "-m", "mcp_server_git", "--repository", str(repo)]


def fake_server(*args: str) -> list[str]:
    return [sys.executable, "-m", "signoff.testing", *args]


def through_signoff(command: list[str], *options: str) -> list[str]:
    """The same server, wrapped: `python -m signoff run [options] -- command`.

    Without a `--policy` option the proxy is a pass-through (`--policy none`), as these tests
    were written for; `signoff run` itself defaults to the balanced preset."""
    if "--policy" not in options and "--config" not in options:
        options = ("--policy", "none", *options)
    return [sys.executable, "-m", "signoff", "run", *options, "--", *command]


def signoff_with_config(config: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "signoff", "run", "--config", str(config), *options]


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    (repo / "README.md").write_text("hello\n")
    subprocess.run(["git", "-C", str(repo), "add", "README.md"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "first"], check=True, env=env)
    return repo


@asynccontextmanager
async def connect(command: list[str], *, env: dict[str, str] | None = None, **session: Any) -> AsyncIterator[ClientSession]:
    """A real SDK client session over stdio to `command`, initialized (bounded wait)."""
    params = StdioServerParameters(command=command[0], args=command[1:], env={**os.environ, **(env or {})})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, **session) as client:
            with anyio.fail_after(CONNECT_TIMEOUT):
                await client.initialize()
            yield client
