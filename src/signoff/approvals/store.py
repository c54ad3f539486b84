"""The shared store: held calls, decisions, audit rows, the kill switch, remembered decisions.

Every proxy process, the CLI, `signoff watch` and the web page on a machine meet in one SQLite
database (WAL mode, so readers never wait for the writer). Each thread gets its own connection;
every write is one `BEGIN IMMEDIATE` transaction, so a decision and its audit row commit together
and the first decision wins across processes (`... WHERE status = 'pending'` + rowcount).
`Store` is the interface the rest of signoff uses, so a PostgreSQL store can replace this one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Protocol

from signoff import paths
from signoff.approvals.audit import GENESIS, audit_key
from signoff.approvals.liveness import ProxyLease, lease_dir, proxy_gone, remove_stale_leases
from signoff.approvals.records import (  # noqa: F401 - re-exported: the store's row types and helpers
    GONE,
    GONE_LOOKBACK,
    GONE_WORDS,
    USER_CHANGES,
    HeldCall,
    KillState,
    Remembered,
    Resolution,
    _already,
    _held,
    _identity_json,
    _killed,
    _remembered,
    apply_migrations,
    attach_votes,
    chain_row,
    edited_json,
    gone_line,
    new_id,
    remembered_values,
    transition_audit,
)
from signoff.approvals.votes import Ballot, Count, count
from signoff.errors import AlreadyDecidedError, StoreError, UnknownCallError, VoteRefusedError
from signoff.model import canonical_json

log = logging.getLogger("signoff.store")

BUSY_TIMEOUT_MS = 5000
"""How long the CLI and the page wait for another process's write lock."""
PROXY_BUSY_TIMEOUT_MS = 400
"""How long a proxy waits for the write lock per call before refusing it (SIGNOFF_STORE_WAIT_MS)."""
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the first schema
        """CREATE TABLE held (
            id TEXT PRIMARY KEY, server TEXT NOT NULL, tool TEXT NOT NULL, arguments TEXT NOT NULL,
            args_hash TEXT NOT NULL, rule TEXT, reason TEXT, session TEXT, session_history TEXT,
            client TEXT, created REAL NOT NULL, deadline REAL NOT NULL, status TEXT NOT NULL,
            decided_by TEXT, channel TEXT, decision_reason TEXT, decided_at REAL, edited_arguments TEXT,
            proxy_pid INTEGER, proxy_host TEXT, hold_mode TEXT NOT NULL, on_timeout TEXT NOT NULL,
            policy_hash TEXT)""",
        "CREATE INDEX held_status ON held(status, created)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY, time TEXT NOT NULL, server TEXT, tool TEXT, arguments TEXT,
            decision TEXT NOT NULL, decided_by TEXT, channel TEXT, reason TEXT, duration_ms REAL,
            policy_hash TEXT, rule TEXT, held_id TEXT, session TEXT, client TEXT,
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
        "CREATE INDEX audit_time ON audit(time)",
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE remembered (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, server TEXT NOT NULL, tool TEXT NOT NULL,
            session TEXT, args_hash TEXT, arguments TEXT, created REAL NOT NULL, created_by TEXT,
            held_id TEXT, revoked_at REAL, revoked_by TEXT)""",
        "CREATE INDEX remembered_tool ON remembered(server, tool)",
        """CREATE TABLE retry_tokens (
            held_id TEXT PRIMARY KEY, server TEXT NOT NULL, tool TEXT NOT NULL, args_hash TEXT NOT NULL,
            policy_hash TEXT NOT NULL, expires REAL NOT NULL, used_at REAL)""",
        "CREATE INDEX retry_call ON retry_tokens(server, tool, args_hash, policy_hash)",
    ),
    (  # 2: the tool's input schema, to check arguments a person edits
        "ALTER TABLE held ADD COLUMN input_schema TEXT",
    ),
    (  # 3: HMAC-SHA256 of each audit row's hash under SIGNOFF_AUDIT_KEY (NULL when no key is set)
        "ALTER TABLE audit ADD COLUMN mac TEXT",
    ),
    (  # 4: the tool's annotations (destructiveHint, openWorldHint…), so the page's risk is the tool's own
        "ALTER TABLE held ADD COLUMN annotations TEXT",
    ),
    (  # 5: what the call does, as the proxy saw it when holding it (present.prepare): the policy's
        # recognised actions and facts, and the presentation every channel shows (file diff included)
        "ALTER TABLE held ADD COLUMN actions TEXT",
        "ALTER TABLE held ADD COLUMN facts TEXT",
        "ALTER TABLE held ADD COLUMN presentation TEXT",
    ),
    (  # 6: liveness (the proxy's lease file) and what became of an approved call (one outcome row)
        "ALTER TABLE held ADD COLUMN proxy_lease TEXT",
        "ALTER TABLE held ADD COLUMN outcome TEXT",
    ),
    (  # 7: who made the call (machine, agent, owner) as JSON; the hash covers it when set
        "ALTER TABLE audit ADD COLUMN identity TEXT",
    ),
    (  # 8: named approvers (team mode): people, their roles and factors; their CLI tokens and
        # one-time passkey enrolment links, stored only as SHA-256 hashes
        """CREATE TABLE users (
            name TEXT PRIMARY KEY, roles TEXT NOT NULL, password_hash TEXT NOT NULL, totp_secret TEXT,
            totp_step INTEGER NOT NULL DEFAULT 0, passkeys TEXT NOT NULL DEFAULT '[]', created REAL NOT NULL,
            created_by TEXT)""",
        """CREATE TABLE user_secrets (
            hash TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, created REAL NOT NULL,
            expires REAL, used_at REAL)""",
        "CREATE INDEX user_secrets_name ON user_secrets(name)",
    ),
    (  # 9: team mode's votes, one row per counted vote (approvals/votes.py); a person approves a
        # call (id + argument hash) once, and denies it once
        """CREATE TABLE votes (
            id INTEGER PRIMARY KEY, held_id TEXT NOT NULL, args_hash TEXT NOT NULL, person TEXT NOT NULL,
            person_key TEXT NOT NULL, decided_by TEXT NOT NULL, roles TEXT NOT NULL,
            vote TEXT NOT NULL CHECK (vote IN ('approve', 'deny')), reason TEXT, channel TEXT, at REAL NOT NULL,
            UNIQUE (held_id, args_hash, person_key, vote))""",
    ),
)
"""Schema versions: `PRAGMA user_version` says how many of these have run."""


def proxy_busy_timeout_ms() -> int:
    """The proxy's bound on waiting for the write lock (SIGNOFF_STORE_WAIT_MS, default 400 ms)."""
    try:
        return max(1, int(os.environ.get("SIGNOFF_STORE_WAIT_MS", PROXY_BUSY_TIMEOUT_MS)))
    except ValueError:
        return PROXY_BUSY_TIMEOUT_MS


def witness_path(db: Path) -> Path:
    """The append-only witness of the audit head, beside the database (`signoff.audit-head`)."""
    return db.with_name(f"{db.stem}.audit-head")


class Store(Protocol):
    """What the broker, audit log and CLI need from a store: `SQLiteStore` (one machine, the
    default) or `PgStore` (store_pg.py: a team's PostgreSQL server, many machines)."""

    reread_seconds: float
    remote: bool
    """The store is a database server (a write may wait on the network and on other hosts'
    locks): the relay then keeps store calls off its event loop."""
    """A waiting hold re-reads its row at least this often even if no change was signalled."""
    witness: Path | None
    """The audit head witness file beside the store (None: no local witness)."""

    def insert_held(self, row: dict[str, Any], audit: dict[str, Any], token: dict[str, Any] | None = None) -> HeldCall: ...
    def get_held(self, held_id: str) -> HeldCall | None: ...
    def list_held(self, status: str | None = "pending", limit: int = 500) -> list[HeldCall]: ...
    def resolve(self, held_id: str, resolution: Resolution) -> HeldCall: ...
    def vote(self, held_id: str, ballot: Ballot) -> HeldCall: ...
    def with_votes(self, calls: Sequence[HeldCall]) -> list[HeldCall]: ...
    def recently_gone(self, since: float) -> list[HeldCall]: ...
    def resolve_many(self, where: Callable[[HeldCall], bool], resolution: Callable[[HeldCall], Resolution]) -> list[HeldCall]: ...
    def record_outcome(self, held_id: str, outcome: str, audit: dict[str, Any]) -> bool: ...
    def change_token(self, topic: str | None = None) -> int: ...
    async def wait_change(self, token: int, timeout: float, *, topic: str | None = None, poll: float = 0.05) -> int: ...
    def queue_signature(self) -> str: ...
    def take_lease(self) -> str | None: ...
    def release_lease(self) -> None: ...
    def proxy_gone(self, held: HeldCall) -> str | None: ...
    def remove_stale_leases(self) -> int: ...
    def note_proxy(self, info: dict[str, Any], alive: Callable[[int], bool]) -> None: ...
    def proxies(self) -> list[dict[str, Any]]: ...
    def get_kill(self) -> KillState: ...
    def set_kill(self, state: KillState, resolution: Callable[[HeldCall], Resolution] | None) -> list[HeldCall]: ...
    def remembered(self, *, include_revoked: bool = False) -> list[Remembered]: ...
    def match_remembered(self, server: str, tool: str, session: str, args_hash: str) -> Remembered | None: ...
    def revoke_remembered(self, rule_id: str, by: str) -> Remembered: ...
    def find_retry(self, server: str, tool: str, args_hash: str, policy_hash: str, now: float) -> str | None: ...
    def use_retry(self, held_id: str, now: float) -> bool: ...
    def append_audit(self, content: dict[str, Any]) -> int: ...
    def audit_rows(
        self, *, decision: str | None = None, since: str | None = None, until: str | None = None
    ) -> Iterator[dict[str, Any]]: ...
    def audit_head(self) -> tuple[int, str] | None: ...
    def audit_counts(self) -> list[tuple[str, str, str, int]]: ...
    def audit_similar(
        self, server: str, tool: str, decisions: Sequence[str], exclude_held: str, limit: int
    ) -> list[dict[str, Any]]: ...
    # people (team mode): plain dict rows, see team/users.py
    def add_user(self, row: dict[str, Any]) -> None: ...
    def get_user(self, name: str) -> dict[str, Any] | None: ...
    def list_users(self) -> list[dict[str, Any]]: ...
    def update_user(self, name: str, changes: dict[str, Any]) -> bool: ...
    def remove_user(self, name: str) -> bool: ...
    def advance_totp(self, name: str, step: int) -> bool: ...
    def add_user_secret(self, row: dict[str, Any]) -> None: ...
    def user_secret(self, hash_: str, kind: str, now: float, *, spend: bool = False) -> dict[str, Any] | None: ...
    def close(self) -> None: ...


class SQLiteStore:
    """The SQLite implementation of `Store`, at `paths.db_path()` unless told otherwise."""

    reread_seconds = 1.0
    remote = False  # a local file: a check takes microseconds, a thread hop would cost more

    def __init__(
        self, path: str | Path | None = None, *, background_checkpoints: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ):
        """`background_checkpoints`: this process's commits never run a WAL checkpoint themselves
        (a checkpoint can take milliseconds); a daemon thread does it every second instead. The
        proxy uses this so an allowed call's durable audit commit never stalls its event loop.
        `busy_timeout_ms`: the longest wait for another process's write lock (the proxy's is short,
        so a locked store refuses a call quickly instead of stalling the session)."""
        self.path = Path(path) if path is not None else paths.db_path()
        self.background_checkpoints = background_checkpoints
        self.busy_timeout_ms = busy_timeout_ms
        self.key = audit_key()
        self._lease: ProxyLease | None = None
        self._local = threading.local()
        self._lock = threading.RLock()  # reopening (under it) connects (which takes it too)
        self._connections: list[sqlite3.Connection] = []
        self._watch_lock = threading.Lock()
        self._watch: sqlite3.Connection | None = None
        self._writes = 0  # commits by this process: `data_version` does not count a connection's own
        self._generation = 0  # bumped when the file at `path` is found replaced: connections reopen
        self._replaced_by: Any = ()  # the identity (None: deleted) whose appearance was last handled
        self._held_generation: dict[str, int] = {}  # held calls this process inserted, by generation
        self._witness_fd: int | None = None
        self.witness: Path | None = witness_path(self.path)
        self._wal_path = Path(f"{self.path}-wal")
        self._wal: tuple[int, int] | None = None
        self._open_files()
        if background_checkpoints:
            threading.Thread(target=self._checkpoints, name="signoff-checkpoint", daemon=True).start()

    def _open_files(self) -> None:
        """Create or adopt the database (0600, also its -wal/-shm), migrate it, open the witness."""
        paths.secure_file(self.path)
        try:
            identity = _identity(self.path)
            with open(self.path, "rb") as fh:
                magic = fh.read(16)
        except OSError as exc:
            raise StoreError(f"cannot open the signoff store {self.path}: {exc.strerror or exc}") from exc
        if magic and magic != b"SQLite format 3\0":
            raise StoreError(f"the signoff store {self.path} is not a SQLite database; restore it or move it aside")
        self._identity = identity
        for suffix in ("-wal", "-shm"):
            paths.secure_file(Path(f"{self.path}{suffix}"), create=False)
        conn = self._conn()
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the signoff store {self.path}: {exc}") from exc
        if not current:  # only a migration needs the write lock: a locked store still opens
            with self._write("open") as conn:
                self._migrate(conn)
        self._wal = _identity_or_none(self._wal_path)
        self._open_witness()

    def _open_witness(self) -> None:
        """The head witness is appended to after each commit that added audit rows. A new witness
        for a trail that already has rows starts with a `start` line, which `verify` reports."""
        path = witness_path(self.path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
            new = True
        except FileExistsError:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            new = False
        except OSError as exc:
            log.error("cannot open the audit head witness %s: %s; truncation will not be detectable", path, exc)
            return
        paths.secure_file(path, create=False)
        if self._witness_fd is None:
            self._witness_fd = fd
        else:  # reopening: the same fd number now names the new file (a writer on another thread
            os.dup2(fd, self._witness_fd)  # never writes into whatever reused a closed number)
            os.close(fd)
        if new:
            head = self._last_row()
            self._witness_write(f"start {head[0]} {head[1]}\n")

    def _witness_write(self, line: str) -> None:
        if self._witness_fd is None:
            return
        try:
            os.write(self._witness_fd, line.encode())  # O_APPEND: one short write, atomic among processes
        except OSError as exc:
            log.error("cannot append to the audit head witness: %s", exc)

    def _check_identity(self) -> None:
        """Reopen if the file at `path` is no longer the one we opened (replaced, or deleted).

        One `stat` (about a microsecond): done on every write and on the kill-switch and change
        polls, so `signoff kill` on a replaced store reaches this process within one poll."""
        now = _identity_or_none(self.path)
        if now == self._identity:
            self._wal = _identity_or_none(self._wal_path)  # the -wal that belongs to this database
            return
        with self._lock:
            if _identity_or_none(self.path) == self._identity:  # another thread reopened meanwhile
                return
            if now != self._replaced_by:  # once per replacement, however long reopening keeps failing
                self._replaced_by = now
                self._generation += 1  # this process's held calls are denied, not looked up in the new file
                log.error(
                    "the signoff store %s was %s while this process used it; reopening it (held calls "
                    "of this process are denied)",
                    self.path,
                    "deleted" if now is None else "replaced",
                )
            with self._watch_lock:
                self._watch = None
            if self._wal is not None and _identity_or_none(self._wal_path) == self._wal:
                # the new file would be read through the old database's WAL: a mix of both
                raise StoreError(
                    f"{self.path} was replaced but the old {self._wal_path.name} and -shm remain; move "
                    "them aside (or restore the previous database) so the store can be reopened"
                )
            try:
                self._open_files()
            except OSError as exc:
                raise StoreError(f"cannot reopen the signoff store {self.path}: {exc}") from exc
            self._replaced_by = ()  # reopened: the next replacement (even another deletion) is new

    def _checkpoints(self, interval: float = 1.0) -> None:
        """Fold the WAL back into the database regularly, off the threads that serve calls."""
        stop = threading.Event()
        while not stop.wait(interval):
            try:
                self.checkpoint()
            except sqlite3.Error as exc:  # busy or closing: the next round tries again
                if "closed" in str(exc):
                    return

    def checkpoint(self) -> tuple[int, int]:
        """One passive WAL checkpoint: (frames in the log, frames copied into the database)."""
        _, frames, copied = self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return frames, copied

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # in WAL mode a commit still survives kill -9
            if self.background_checkpoints:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the signoff store {self.path}: {exc}") from exc
        with self._lock:
            self._connections.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation != self._generation:  # the file was replaced
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.close()
            conn = None
        if conn is None:
            conn = self._local.conn = self._connect()
            self._local.generation = self._generation
        return conn

    @contextmanager
    def _write(self, what: str = "write") -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so reads inside it are current.

        Any sqlite3 error inside becomes a StoreError; signoff's own errors pass through.
        """
        self._check_identity()
        conn = self._conn()
        self._local.appended = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"cannot {what} the signoff store {self.path}: {exc}") from exc
        self._writes += 1
        appended = self._local.appended
        if appended is not None:  # after the durable commit: the witness never runs ahead of the db
            self._witness_write(" ".join(appended) + "\n")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the signoff store {self.path}: {exc}") from exc

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if apply_migrations(conn.execute, MIGRATIONS, version, str(self.path)):
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._watch = None
        self._local = threading.local()
        if self._witness_fd is not None:
            os.close(self._witness_fd)
            self._witness_fd = None

    def change_token(self, topic: str | None = None) -> int:
        """Differs whenever anyone committed: `PRAGMA data_version` (other connections) + ours.

        SQLite cannot say what changed, so `topic` (a held call's id, or `kill`) is ignored."""
        self._check_identity()
        with self._watch_lock:
            if self._watch is None:
                self._watch = self._connect()
            try:
                version = self._watch.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the signoff store {self.path}: {exc}") from exc
        return (self._generation << 64) + (version << 32) + self._writes  # a reopened file: another token

    async def wait_change(self, token: int, timeout: float, *, topic: str | None = None, poll: float = 0.05) -> int:
        """The change token after a change, or after `timeout`. SQLite cannot signal a change to
        another process, so this looks once after `min(poll, timeout)` seconds."""
        import anyio

        await anyio.sleep(max(0.0, min(poll, timeout)))
        return await anyio.to_thread.run_sync(self.change_token, topic)

    # ------------------------------------------------------------------ liveness (liveness.py)

    def take_lease(self) -> str | None:
        """This process's proxy lease file (taken on first use); None if it cannot be taken (then
        liveness falls back to the pid)."""
        if self._lease is None:
            try:
                self._lease = ProxyLease(lease_dir(self))
            except OSError as exc:
                log.warning("cannot take a proxy lease (liveness falls back to the pid): %s", exc)
                return None
        return str(self._lease.path)

    def release_lease(self) -> None:
        """A clean exit: give the lease up (after this process's calls were closed)."""
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def proxy_gone(self, held: HeldCall) -> str | None:
        return proxy_gone(held)

    def remove_stale_leases(self) -> int:
        return remove_stale_leases(lease_dir(self))

    def queue_signature(self) -> str:
        """What the page's queue shows, in a few bytes: pending ids (with deadlines), the kill switch
        and the last vote (a vote changes a card's "approved by alice (1 of 2)").

        Read-only and index-only, so an idle page can compare it often and push only on change."""
        rows = self._read("SELECT id, deadline FROM held WHERE status = 'pending' ORDER BY created")
        kill = self._read("SELECT value FROM state WHERE key = 'kill'")
        last_vote = self._read("SELECT max(id) FROM votes")[0][0]
        return canonical_json([[r[0], r[1]] for r in rows] + [kill[0][0] if kill else None, last_vote])

    # ------------------------------------------------------------------ running proxies

    def note_proxy(self, info: dict[str, Any], alive: Callable[[int], bool]) -> None:
        """Record which policy this proxy runs (`proxy:<host>:<pid>`), dropping dead proxies' entries."""
        host, pid = info["host"], info["pid"]
        with self._write() as conn:
            for (key,) in conn.execute(
                "SELECT key FROM state WHERE substr(key, 1, ?) = ?", (len(f"proxy:{host}:"), f"proxy:{host}:")
            ).fetchall():
                other = key.rsplit(":", 1)[1]
                if other.isdigit() and int(other) != pid and not alive(int(other)):
                    conn.execute("DELETE FROM state WHERE key = ?", (key,))
            conn.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (f"proxy:{host}:{pid}", canonical_json(info)))

    def proxies(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._read("SELECT value FROM state WHERE substr(key, 1, 6) = 'proxy:' ORDER BY key")]

    # ------------------------------------------------------------------ held calls

    def insert_held(self, row: dict[str, Any], audit: dict[str, Any], token: dict[str, Any] | None = None) -> HeldCall:
        """Insert a pending call (killed at once if the kill switch is on) and its `held` audit row."""
        row = {**row, "proxy_host": row.get("proxy_host") or socket.gethostname()}
        for attempt in range(5):
            held_id = row.get("id") or new_id("h")
            try:
                with self._write() as conn:
                    kill = self._kill(conn)
                    values = {**row, "id": held_id, "status": "pending"}
                    conn.execute(
                        f"INSERT INTO held ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", list(values.values())
                    )
                    self._append(conn, {**audit, "held_id": held_id, "decision": "held"})
                    if kill.on:
                        self._transition(conn, self._get(conn, held_id), _killed(kill))  # type: ignore[arg-type]
                    if token is not None:
                        conn.execute(
                            "INSERT INTO retry_tokens (held_id, server, tool, args_hash, policy_hash, expires)"
                            " VALUES (?, ?, ?, ?, ?, ?)",
                            (
                                held_id,
                                values["server"],
                                values["tool"],
                                values["args_hash"],
                                token["policy_hash"],
                                token["expires"],
                            ),
                        )
                self._held_generation[held_id] = self._generation
                held = self.get_held(held_id)
                assert held is not None
                return held
            except sqlite3.IntegrityError as exc:
                if row.get("id") or attempt == 4:
                    raise StoreError(f"cannot insert held call {held_id}: {exc}") from exc
        raise AssertionError("unreachable")

    def _get(self, conn: sqlite3.Connection, held_id: str) -> HeldCall | None:
        row = conn.execute("SELECT * FROM held WHERE id = ?", (held_id,)).fetchone()
        return None if row is None else _held(row)

    def _not_replaced(self, held_id: str) -> None:
        """A call this process held in a store that has since been replaced is not looked up in the
        new one (a row with its id there was not decided by the approvers who saw it): it fails."""
        generation = self._held_generation.get(held_id)
        if generation is not None and generation != self._generation:
            raise StoreError(
                f"the store was replaced while {held_id} was held; it was not run (call again "
                "so that it is held in the current store)"
            )

    def get_held(self, held_id: str) -> HeldCall | None:
        self._not_replaced(held_id)
        rows = self._read("SELECT * FROM held WHERE id = ?", (held_id,))
        return _held(rows[0]) if rows else None

    def list_held(self, status: str | None = "pending", limit: int = 500) -> list[HeldCall]:
        if status is None:
            rows = self._read("SELECT * FROM held ORDER BY created DESC LIMIT ?", (limit,))
        else:
            rows = self._read("SELECT * FROM held WHERE status = ? ORDER BY created LIMIT ?", (status, limit))
        return [_held(r) for r in rows]

    def recently_gone(self, since: float) -> list[HeldCall]:
        """Calls closed since `since` because nobody waits for them any more (GONE), oldest first."""
        marks = ", ".join("?" * len(GONE))
        rows = self._read(
            f"SELECT * FROM held WHERE status IN ({marks}) AND created >= ? AND decided_at >= ? ORDER BY decided_at LIMIT 200",
            (*GONE, since - GONE_LOOKBACK, since),
        )
        return [_held(r) for r in rows]

    def resolve(self, held_id: str, resolution: Resolution) -> HeldCall:
        """Move a pending call to its final status; the first resolution wins, later ones raise.

        A `live_only` resolution (a person's decision) first checks, inside the same transaction,
        that the proxy holding a waiting call is alive; if it is gone the call becomes `abandoned`
        in that commit and CallGoneError is raised: nothing can decide it between check and mark.
        """
        self._not_replaced(held_id)
        with self._write() as conn:
            held = self._get(conn, held_id)
            if held is None:
                raise UnknownCallError(f"no held call {held_id}")
            gone = None
            if resolution.live_only and held.status == "pending" and held.hold_mode == "wait":
                gone = proxy_gone(held)
            if gone is None and self._transition(conn, held, resolution):
                return self._get(conn, held_id)  # type: ignore[return-value]
            if gone is not None:
                self._transition(conn, held, Resolution("abandoned", "signoff", "signoff", gone))
            error = _already(self._get(conn, held_id))  # type: ignore[arg-type]
        raise error  # after the commit: the abandonment stays recorded

    def vote(self, held_id: str, ballot: Ballot) -> HeldCall:
        """Record one person's vote on a pending call and, in the same transaction, re-count its
        votes (votes.count): the call is resolved when the quorum is reached or an eligible person
        denies. Returns the call with its votes. A refused vote (role, not_self, already approved)
        is written as a `refused_vote` audit row and raises VoteRefusedError with the reason; a
        decided call raises the usual AlreadyDecidedError; a waiting call whose proxy is gone is
        abandoned and raises CallGoneError (as `resolve` with `live_only`)."""
        self._not_replaced(held_id)
        with self._write() as conn:
            held = self._get(conn, held_id)
            if held is None:
                raise UnknownCallError(f"no held call {held_id}")
            gone = proxy_gone(held) if held.status == "pending" and held.hold_mode == "wait" else None
            if held.status != "pending" or gone is not None:
                if gone is not None:
                    self._transition(conn, held, Resolution("abandoned", "signoff", "signoff", gone))
                error: Exception = _already(self._get(conn, held_id))  # type: ignore[arg-type]
            else:
                rows = [dict(r) for r in conn.execute("SELECT * FROM votes WHERE held_id = ? ORDER BY id", (held_id,))]
                counted = count(held, rows, ballot, time.time())
                self._append(conn, counted.audit)
                if counted.refused is None:
                    return self._record_vote(conn, held, counted, rows)
                error = VoteRefusedError(counted.refused)
        raise error  # after the commit: the refused vote's audit row (or the abandonment) stays

    def _record_vote(self, conn: sqlite3.Connection, held: HeldCall, counted: Count, rows: list[dict[str, Any]]) -> HeldCall:
        row = counted.row
        cursor = conn.execute(f"INSERT INTO votes ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        if counted.resolution is not None and not self._transition(conn, held, counted.resolution):
            raise AssertionError(f"{held.id} left pending inside the vote's transaction")
        done = self._get(conn, held.id)
        assert done is not None
        return replace(done, votes=(*rows, {**row, "id": cursor.lastrowid}))

    def with_votes(self, calls: Sequence[HeldCall]) -> list[HeldCall]:
        """The calls with their counted votes (one query; none for calls one approver decides)."""
        wanted = [h.id for h in calls if not h.requirements.default]
        if not wanted:
            return list(calls)
        rows = self._read(f"SELECT * FROM votes WHERE held_id IN ({', '.join('?' * len(wanted))}) ORDER BY id", wanted)
        return attach_votes(calls, [dict(r) for r in rows])

    def resolve_many(self, where: Callable[[HeldCall], bool], resolution: Callable[[HeldCall], Resolution]) -> list[HeldCall]:
        """Resolve every pending call `where` accepts, in one transaction (abandoned at start-up)."""
        with self._write() as conn:
            return self._resolve_pending(conn, where, resolution)

    def record_outcome(self, held_id: str, outcome: str, audit: dict[str, Any]) -> bool:
        """What became of an approved call, once: False if its outcome was already recorded."""
        with self._write() as conn:
            cursor = conn.execute("UPDATE held SET outcome = ? WHERE id = ? AND outcome IS NULL", (outcome, held_id))
            if cursor.rowcount != 1:
                return False
            self._append(conn, audit)
            return True

    def _resolve_pending(
        self, conn: sqlite3.Connection, where: Callable[[HeldCall], bool], resolution: Callable[[HeldCall], Resolution]
    ) -> list[HeldCall]:
        done = []
        for row in conn.execute("SELECT * FROM held WHERE status = 'pending'").fetchall():
            held = _held(row)
            if where(held) and self._transition(conn, held, resolution(held)):
                done.append(self._get(conn, held.id))
        return done  # type: ignore[return-value]

    def _transition(self, conn: sqlite3.Connection, held: HeldCall, res: Resolution) -> bool:
        edited = edited_json(held, res)
        now = time.time()
        cursor = conn.execute(
            "UPDATE held SET status = ?, decided_by = ?, channel = ?, decision_reason = ?, decided_at = ?,"
            " edited_arguments = ? WHERE id = ? AND status = 'pending'",
            (res.status, res.by, res.channel, res.reason, now, edited, held.id),
        )
        if cursor.rowcount != 1:
            return False
        self._append(conn, transition_audit(held, res, edited, now))
        if res.remember and res.status == "approved":
            values = remembered_values(held, res, now)
            conn.execute(
                f"INSERT INTO remembered ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", list(values.values())
            )
        return True

    # ------------------------------------------------------------------ kill switch

    def _kill(self, conn: sqlite3.Connection) -> KillState:
        row = conn.execute("SELECT value FROM state WHERE key = 'kill'").fetchone()
        return KillState(False) if row is None else KillState(**json.loads(row[0]))

    def get_kill(self) -> KillState:
        try:
            self._check_identity()
            return self._kill(self._conn())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the signoff store {self.path}: {exc}") from exc

    def set_kill(self, state: KillState, resolution: Callable[[HeldCall], Resolution] | None) -> list[HeldCall]:
        """Set the kill switch; with `resolution`, every pending call is resolved in the same commit."""
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO state (key, value) VALUES ('kill', ?)", (json.dumps(asdict(state)),))
            return [] if resolution is None else self._resolve_pending(conn, lambda h: True, resolution)

    # ------------------------------------------------------------------ remembered decisions

    def remembered(self, *, include_revoked: bool = False) -> list[Remembered]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return [_remembered(r) for r in self._read(f"SELECT * FROM remembered{where} ORDER BY created")]

    def match_remembered(self, server: str, tool: str, session: str, args_hash: str) -> Remembered | None:
        rows = self._read(
            "SELECT * FROM remembered WHERE revoked_at IS NULL AND server = ? AND tool = ? AND (kind = 'tool'"
            " OR (kind = 'args' AND args_hash = ?) OR (kind = 'session' AND session = ? AND session != ''))"
            " ORDER BY created LIMIT 1",
            (server, tool, args_hash, session),
        )
        return _remembered(rows[0]) if rows else None

    def revoke_remembered(self, rule_id: str, by: str) -> Remembered:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE remembered SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), by, rule_id),
            )
            row = conn.execute("SELECT * FROM remembered WHERE id = ?", (rule_id,)).fetchone()
        if row is None:
            raise UnknownCallError(f"no remembered decision {rule_id}")
        if cursor.rowcount != 1:
            raise AlreadyDecidedError(f"remembered decision {rule_id} was already revoked")
        return _remembered(row)

    # ------------------------------------------------------------------ retry tokens

    def find_retry(self, server: str, tool: str, args_hash: str, policy_hash: str, now: float) -> str | None:
        rows = self._read(
            "SELECT held_id FROM retry_tokens WHERE server = ? AND tool = ? AND args_hash = ? AND policy_hash = ?"
            " AND used_at IS NULL AND expires > ? ORDER BY expires DESC LIMIT 1",
            (server, tool, args_hash, policy_hash, now),
        )
        return rows[0][0] if rows else None

    def use_retry(self, held_id: str, now: float) -> bool:
        """Spend a token; False if someone spent it first (single use across processes)."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE retry_tokens SET used_at = ? WHERE held_id = ? AND used_at IS NULL AND expires > ?", (now, held_id, now)
            )
            return cursor.rowcount == 1

    # ------------------------------------------------------------------ audit

    def _head(self, conn: sqlite3.Connection) -> tuple[int, str] | None:
        row = conn.execute("SELECT value FROM state WHERE key = 'audit_head'").fetchone()
        if row is None:
            return None
        number, digest = json.loads(row[0])
        return int(number), str(digest)

    def _append(self, conn: sqlite3.Connection, content: dict[str, Any]) -> int:
        """Chain one row onto the head; the caller holds the write transaction."""
        head = self._head(conn)
        if head is None:  # a trail from before the head was kept, or an empty one
            last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            head = (last[0], last[1]) if last else (0, GENESIS)
        row = chain_row(content, head, self.key)
        self._local.appended = (str(row["id"]), row["hash"], row.get("mac") or "-")
        conn.execute(f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        conn.execute(
            "INSERT OR REPLACE INTO state (key, value) VALUES ('audit_head', ?)", (json.dumps([row["id"], row["hash"]]),)
        )
        return row["id"]

    def append_audit(self, content: dict[str, Any]) -> int:
        """Append one audit row in its own transaction (the head is read inside it)."""
        with self._write("append to") as conn:
            return self._append(conn, content)

    def _last_row(self) -> tuple[int, str]:
        rows = self._read("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
        return (rows[0][0], rows[0][1]) if rows else (0, GENESIS)

    def audit_head(self) -> tuple[int, str] | None:
        try:
            return self._head(self._conn())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the signoff store {self.path}: {exc}") from exc

    def audit_counts(self) -> list[tuple[str, str, str, int]]:
        """(server, tool, decision, rows) for the page's per-tool statistics, counted by SQLite."""
        return [
            (r[0], r[1], r[2], r[3])
            for r in self._read("SELECT server, tool, decision, count(*) FROM audit GROUP BY server, tool, decision")
        ]

    def audit_similar(
        self, server: str, tool: str, decisions: Sequence[str], exclude_held: str, limit: int
    ) -> list[dict[str, Any]]:
        """The latest decisions on one tool, newest first (the page's "similar past calls")."""
        marks = ", ".join("?" * len(decisions))
        return [
            dict(r)
            for r in self._read(
                f"SELECT time, decision, decided_by, reason, arguments FROM audit WHERE server = ? AND tool = ?"
                f" AND decision IN ({marks}) AND (held_id IS NULL OR held_id != ?) ORDER BY id DESC LIMIT ?",
                (server, tool, *decisions, exclude_held, limit),
            )
        ]

    def audit_rows(
        self, *, decision: str | None = None, since: str | None = None, until: str | None = None
    ) -> Iterator[dict[str, Any]]:
        clauses, params = [], []
        for clause, value in (("decision = ?", decision), ("time >= ?", since), ("time < ?", until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        try:
            cursor = self._conn().execute(f"SELECT * FROM audit{where} ORDER BY id", params)
            for row in cursor:
                yield dict(row)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the signoff audit trail {self.path}: {exc}") from exc

    # ------------------------------------------------------------------ people (team mode)

    def add_user(self, row: dict[str, Any]) -> None:
        """Insert a person (name, roles, password_hash, totp_secret, passkeys, created, created_by)."""
        try:
            with self._write() as conn:
                conn.execute(f"INSERT INTO users ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"a person named {row.get('name')!r} already exists") from exc

    def get_user(self, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM users WHERE name = ?", (name,))
        return dict(rows[0]) if rows else None

    def list_users(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM users ORDER BY name")]

    def update_user(self, name: str, changes: dict[str, Any]) -> bool:
        """Change some of USER_CHANGES; False if there is no such person."""
        unknown = set(changes) - set(USER_CHANGES)
        if unknown or not changes:
            raise StoreError(f"cannot change {', '.join(sorted(unknown)) or 'nothing'} of a person")
        with self._write() as conn:
            sets = ", ".join(f"{column} = ?" for column in changes)
            return conn.execute(f"UPDATE users SET {sets} WHERE name = ?", (*changes.values(), name)).rowcount == 1

    def remove_user(self, name: str) -> bool:
        """Remove a person with their CLI tokens and enrolment links, in one commit."""
        with self._write() as conn:
            conn.execute("DELETE FROM user_secrets WHERE name = ?", (name,))
            return conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 1

    def advance_totp(self, name: str, step: int) -> bool:
        """Accept TOTP time step `step` for `name` once: False if it (or a later one) was used."""
        with self._write() as conn:
            return (
                conn.execute("UPDATE users SET totp_step = ? WHERE name = ? AND totp_step < ?", (step, name, step)).rowcount == 1
            )

    def add_user_secret(self, row: dict[str, Any]) -> None:
        """A CLI token or enrolment link, by its hash: (hash, name, kind, created, expires)."""
        with self._write() as conn:
            conn.execute(f"INSERT INTO user_secrets ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))

    def user_secret(self, hash_: str, kind: str, now: float, *, spend: bool = False) -> dict[str, Any] | None:
        """The unexpired, unspent secret of this hash and kind whose person still exists; `spend`
        marks it used in the same commit (a one-time link works once across processes)."""
        sql = (
            "SELECT s.* FROM user_secrets s JOIN users u ON u.name = s.name WHERE s.hash = ? AND s.kind = ?"
            " AND s.used_at IS NULL AND (s.expires IS NULL OR s.expires > ?)"
        )
        if not spend:
            rows = self._read(sql, (hash_, kind, now))
            return dict(rows[0]) if rows else None
        with self._write() as conn:
            row = conn.execute(sql, (hash_, kind, now)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE user_secrets SET used_at = ? WHERE hash = ?", (now, hash_))
            return dict(row)


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _identity_or_none(path: Path) -> tuple[int, int] | None:
    try:
        return _identity(path)
    except FileNotFoundError:
        return None


STORE_ENV = "SIGNOFF_STORE"
"""Where the store is: a PostgreSQL URL (team mode) or a SQLite file path; unset: SIGNOFF_HOME's signoff.db."""


def store_location() -> str | None:
    """SIGNOFF_STORE (set from `store:` in signoff.yaml when the environment does not set it)."""
    return os.environ.get(STORE_ENV) or None


def is_postgres(location: str | None) -> bool:
    return location is not None and location.split(":", 1)[0].lower() in ("postgresql", "postgres")


def open_store(
    path: str | Path | None = None, *, background_checkpoints: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> Store:
    """The shared store: SIGNOFF_STORE's PostgreSQL server (`postgresql://…`) or SQLite file, else
    the SQLite file under SIGNOFF_HOME. An explicit `path` is always a SQLite file."""
    location = None if path is not None else store_location()
    if location is not None and is_postgres(location):
        from signoff.approvals.store_pg import PgStore

        return PgStore(location, busy_timeout_ms=busy_timeout_ms)
    if location:
        path = location.removeprefix("sqlite://")
    return SQLiteStore(path, background_checkpoints=background_checkpoints, busy_timeout_ms=busy_timeout_ms)
