"""The PostgreSQL store (team mode): the proxies, pages and CLIs of many machines share one database.

Selected with `SIGNOFF_STORE=postgresql://…` (or `store:` in signoff.yaml); the same contract as
`SQLiteStore`, built on what PostgreSQL guarantees across hosts:

- Every write that appends to the audit trail first locks the chain's head row
  (`SELECT … FROM audit_head FOR UPDATE`), so appends from any number of hosts form one total
  order without gaps, and a held call, its decision and its audit row commit together.
- First decision wins: `UPDATE held … WHERE status = 'pending' RETURNING *`.
- Each change is announced with NOTIFY inside its transaction (payload: the held call's id, `kill`
  or `new`). One LISTEN connection per process, opened on first use, turns them into change
  tokens that `wait_change` waits on. When that connection is lost and made again, every token
  moves, so each waiting hold re-reads its row: a NOTIFY sent meanwhile is not lost.
- Liveness: a pid means nothing on another host, so each proxy keeps a lease row alive with a
  heartbeat (the database's clock); a proxy whose lease lapsed is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
import weakref
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import anyio
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from signoff.approvals.audit import GENESIS
from signoff.errors import StoreError, UnknownCallError, AlreadyDecidedError
from signoff.approvals.liveness import pid_alive
from signoff.model import canonical_json
from signoff.approvals.store import (GONE, GONE_LOOKBACK, HeldCall, KillState, Remembered, Resolution, _already, _held, _killed,
                           _remembered, audit_key, chain_row, edited_json, new_id, remembered_values,
                           transition_audit)

log = logging.getLogger("signoff.store_pg")

LEASE_SECONDS = float(os.environ.get("SIGNOFF_LEASE_SECONDS", "15"))
"""A proxy whose heartbeat is older than this is gone (it beats every third of it)."""
REREAD_SECONDS = 30.0
"""A waiting hold re-reads its row this often even without a NOTIFY (belt and braces only)."""
POOL_SIZE = int(os.environ.get("SIGNOFF_STORE_POOL", "4"))
RECONNECT_FIRST = 0.2
"""The LISTEN connection's first retry after it was lost (doubling up to 5 s)."""
TOPICS_KEPT = 50_000
IDLE_IN_TRANSACTION_MS = 10_000
"""A session stuck inside a transaction (a hung process) loses it, and the head lock, after this."""

NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
"""The database's clock: every host's leases are measured by the same one."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the schema of SQLite's migrations 1-6 (audit.identity: the team side's migration 7),
       # plus the chain head and proxy leases
        """CREATE TABLE held (
            id TEXT PRIMARY KEY, server TEXT NOT NULL, tool TEXT NOT NULL, arguments TEXT NOT NULL,
            args_hash TEXT NOT NULL, rule TEXT, reason TEXT, session TEXT, session_history TEXT,
            client TEXT, created DOUBLE PRECISION NOT NULL, deadline DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL, decided_by TEXT, channel TEXT, decision_reason TEXT,
            decided_at DOUBLE PRECISION, edited_arguments TEXT, proxy_pid INTEGER, proxy_host TEXT,
            hold_mode TEXT NOT NULL, on_timeout TEXT NOT NULL, policy_hash TEXT, input_schema TEXT,
            annotations TEXT, actions TEXT, facts TEXT, presentation TEXT, proxy_lease TEXT, outcome TEXT)""",
        "CREATE INDEX held_status ON held(status, created)",
        """CREATE TABLE audit (
            id BIGINT PRIMARY KEY, time TEXT NOT NULL, server TEXT, tool TEXT, arguments TEXT,
            decision TEXT NOT NULL, decided_by TEXT, channel TEXT, reason TEXT, duration_ms DOUBLE PRECISION,
            policy_hash TEXT, rule TEXT, held_id TEXT, session TEXT, client TEXT,
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL, mac TEXT, identity TEXT)""",
        "CREATE INDEX audit_time ON audit(time)",
        "CREATE INDEX audit_tool ON audit(server, tool, id)",
        """CREATE TABLE audit_head (
            one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), id BIGINT NOT NULL, hash TEXT NOT NULL)""",
        f"INSERT INTO audit_head (one, id, hash) VALUES (TRUE, 0, '{GENESIS}')",
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE remembered (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, server TEXT NOT NULL, tool TEXT NOT NULL,
            session TEXT, args_hash TEXT, arguments TEXT, created DOUBLE PRECISION NOT NULL, created_by TEXT,
            held_id TEXT, revoked_at DOUBLE PRECISION, revoked_by TEXT)""",
        "CREATE INDEX remembered_tool ON remembered(server, tool)",
        """CREATE TABLE retry_tokens (
            held_id TEXT PRIMARY KEY, server TEXT NOT NULL, tool TEXT NOT NULL, args_hash TEXT NOT NULL,
            policy_hash TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL, used_at DOUBLE PRECISION)""",
        "CREATE INDEX retry_call ON retry_tokens(server, tool, args_hash, policy_hash)",
        """CREATE TABLE proxy_leases (
            lease TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started DOUBLE PRECISION NOT NULL,
            heartbeat DOUBLE PRECISION NOT NULL, ttl DOUBLE PRECISION NOT NULL)""",
    ),
)
"""Schema versions: the `signoff_schema` table says how many of these have run."""


def describe(url: str) -> str:
    """The server and database of a URL, for messages (never the password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "PostgreSQL (unparseable SIGNOFF_STORE URL)"
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{host}{port}/{info.get('dbname') or ''}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: Any) -> Any:
    """A string PostgreSQL accepts: NUL and lone surrogates (which a model can send in a tool name)
    become U+FFFD. Done before hashing, so the audit row stored is the row hashed."""
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATE.sub("\ufffd", value)
    return value


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _text(v) for k, v in row.items()}


def _lock_key(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "big", signed=True)


def _insert(table: str, row: dict[str, Any]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class _Tx:
    """One write transaction: its connection, the chain head it locked, the topics to NOTIFY."""

    def __init__(self, conn: psycopg.Connection[Any], head: tuple[int, str] | None):
        self.conn = conn
        self.head = head
        self.moved = False
        self.topics: set[str] = set()

    def one(self, query: Any, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        return self.conn.execute(query, params).fetchone()


_OPEN: weakref.WeakSet[PgStore] = weakref.WeakSet()


def close_all() -> None:
    """Close every store this process opened (their pools, LISTEN and heartbeat threads)."""
    for store in list(_OPEN):
        store.close()


class PgStore:
    """The PostgreSQL implementation of `Store` (see the module docstring)."""

    reread_seconds = REREAD_SECONDS
    witness = None

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000):
        self.url = url
        self.where = describe(url)
        self.key = audit_key()
        self.wait = max(1.0, busy_timeout_ms / 1000)
        self._lock_ms = max(1000, busy_timeout_ms)
        self._pool = ConnectionPool(url, min_size=1, max_size=max(2, POOL_SIZE), open=False, timeout=self.wait,
                                    kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 5,
                                            "application_name": "signoff"},
                                    configure=self._configure, check=ConnectionPool.check_connection,
                                    reconnect_timeout=0, name="signoff")
        try:
            self._pool.open(wait=True, timeout=self.wait)  # a proxy keeps serving (refusing) meanwhile
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            raise StoreError(f"cannot reach the signoff store {self.where}: {_first_line(exc)}; is the PostgreSQL "
                             "server up and SIGNOFF_STORE right?") from None
        self.schema = self._read_one("SELECT current_schema() AS s")["s"]  # type: ignore[index]
        if self.schema is None:
            self.close()
            raise StoreError(f"the signoff store {self.where}: the schema in its search_path does not exist; create it")
        self.channel = f"signoff:{self.schema}"
        self._migrate()
        # change tokens (filled by the LISTEN thread)
        self._cond = threading.Condition()
        self._seq = 0
        self._epoch = 0
        self._last: dict[str, int] = {}
        self._waiters: dict[str | None, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()
        self.reconnects = 0
        """How many times the LISTEN connection was made again after it was lost."""
        self.listener_pid: int | None = None
        """The server process of the LISTEN connection (tests terminate it)."""
        self._listening = threading.Event()
        # this process's proxy lease
        self._lease: str | None = None
        self._beat: threading.Thread | None = None
        _OPEN.add(self)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET lock_timeout = {int(self._lock_ms)}")
        conn.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")

    # ------------------------------------------------------------------ connections

    def _fail(self, what: str, exc: BaseException) -> StoreError:
        if isinstance(exc, PoolTimeout):
            return StoreError(f"cannot {what} the signoff store {self.where}: no connection within {self.wait:g}s "
                              "(is the PostgreSQL server up?)")
        return StoreError(f"cannot {what} the signoff store {self.where}: {_first_line(exc)}")

    @contextmanager
    def _write(self, what: str = "write", *, chain: bool = True) -> Iterator[_Tx]:
        """One transaction; with `chain`, the audit head is locked first (every appender queues
        there, so audit ids follow commit order and no transaction can wait on another's rows
        while holding it)."""
        try:
            with self._pool.connection() as conn:
                with conn.transaction():
                    head = None
                    if chain:
                        row = conn.execute("SELECT id, hash FROM audit_head FOR UPDATE").fetchone()
                        head = (row["id"], row["hash"])
                    tx = _Tx(conn, head)
                    yield tx
                    if tx.moved:
                        conn.execute("UPDATE audit_head SET id = %s, hash = %s", tx.head)
                    if tx.topics:
                        conn.execute("SELECT pg_notify(%s, t) FROM unnest(%s::text[]) AS t",
                                     (self.channel, sorted(tx.topics)))
        except (PoolTimeout, psycopg.Error) as exc:
            raise self._fail(what, exc) from exc

    def _read(self, query: Any, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(query, params).fetchall()
        except (PoolTimeout, psycopg.Error) as exc:
            raise self._fail("read", exc) from exc

    def _read_one(self, query: Any, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._read(query, params)
        return rows[0] if rows else None

    def _migrate(self) -> None:
        """Bring the schema up to date under an advisory lock: processes starting together queue."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("signoff-migrate", self.schema),))
                conn.execute("CREATE TABLE IF NOT EXISTS signoff_schema (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM signoff_schema").fetchone()
                if row is None:
                    conn.execute("INSERT INTO signoff_schema (version) VALUES (0)")
                version = row["version"] if row else 0
                if version > len(MIGRATIONS):
                    raise StoreError(f"the signoff store {self.where} has schema version {version}, newer than this "
                                     f"signoff ({len(MIGRATIONS)}); upgrade signoff")
                for number in range(version, len(MIGRATIONS)):
                    for statement in MIGRATIONS[number]:
                        conn.execute(statement)
                if version < len(MIGRATIONS):
                    conn.execute("UPDATE signoff_schema SET version = %s", (len(MIGRATIONS),))
        except StoreError:
            self.close()
            raise
        except (PoolTimeout, psycopg.Error) as exc:
            self.close()
            raise self._fail("migrate", exc) from exc

    def close(self) -> None:
        self._closed = getattr(self, "_closed", threading.Event())
        self._closed.set()
        self._pool.close()
        _OPEN.discard(self)

    # ------------------------------------------------------------------ changes: LISTEN/NOTIFY

    def _start_listener(self) -> None:
        with self._cond:
            if self._listener is None and not self._closed.is_set():
                self._listener = threading.Thread(target=self._listen, name="signoff-listen", daemon=True)
                self._listener.start()

    def _listen(self) -> None:
        delay = RECONNECT_FIRST
        first = True
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                     application_name="signoff-listen") as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.listener_pid = conn.info.backend_pid
                    if not first:
                        self.reconnects += 1
                    first, delay = False, RECONNECT_FIRST
                    self._moved(None)  # (re)connected: whatever was missed meanwhile, every waiter re-reads
                    self._listening.set()
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._moved(note.payload)
            except psycopg.Error as exc:
                if self._closed.is_set():
                    return
                if self._listening.is_set():
                    log.warning("lost the LISTEN connection to %s (%s); reconnecting", self.where, _first_line(exc))
            self._listening.clear()
            self._moved(None)  # lost: every waiter re-reads now (and fails closed if the server is down)
            self._closed.wait(delay)
            delay = min(delay * 2, 5.0)

    def _moved(self, topic: str | None) -> None:
        """A change to `topic` (None: to anything, after a reconnect): move tokens, wake waiters."""
        with self._cond:
            self._seq += 1
            if topic is None:
                self._epoch = self._seq
                woken = [w for ws in self._waiters.values() for w in ws]
            else:
                if len(self._last) >= TOPICS_KEPT:
                    self._last.clear()
                    self._epoch = self._seq
                self._last[topic] = self._seq
                woken = [*self._waiters.get(topic, ()), *self._waiters.get(None, ())]
            self._cond.notify_all()
        for loop, event in woken:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that event loop has closed
                pass

    def change_token(self, topic: str | None = None) -> int:
        """Moves on every change (with `topic`: to that held call or `kill`), and after the LISTEN
        connection was made again. No query: the LISTEN thread keeps it."""
        self._start_listener()
        with self._cond:
            if topic is None:
                return self._seq
            return max(self._last.get(topic, 0), self._epoch)

    async def wait_change(self, token: int, timeout: float, *, topic: str | None = None, poll: float = 0.05) -> int:
        """Wait until the token for `topic` moves (a NOTIFY, or a reconnect) or `timeout` passes."""
        current = self.change_token(topic)
        if current != token or timeout <= 0:
            return current
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._cond:
            self._waiters.setdefault(topic, set()).add(entry)
        try:
            if self.change_token(topic) == token:  # nothing moved between the check and registering
                with anyio.move_on_after(timeout):
                    await entry[1].wait()
        finally:
            with self._cond:
                waiting = self._waiters.get(topic)
                if waiting is not None:
                    waiting.discard(entry)
                    if not waiting:
                        del self._waiters[topic]
        return self.change_token(topic)

    def wait_listening(self, timeout: float) -> bool:
        """True once the LISTEN connection is up (tests, benchmarks)."""
        self._start_listener()
        return self._listening.wait(timeout)

    def queue_signature(self) -> str:
        rows = self._read("SELECT id, deadline FROM held WHERE status = 'pending' ORDER BY created")
        kill = self._read_one("SELECT value FROM state WHERE key = 'kill'")
        return canonical_json([[r["id"], r["deadline"]] for r in rows] + [kill["value"] if kill else None])

    # ------------------------------------------------------------------ liveness: heartbeat leases

    def take_lease(self) -> str | None:
        """This process's lease row (made on first use), kept alive by a heartbeat thread."""
        if self._lease is None:
            lease = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
            self._beat_once(lease)
            self._lease = lease
            self._beat = threading.Thread(target=self._heartbeat, args=(lease,), name="signoff-lease", daemon=True)
            self._beat.start()
        return self._lease

    def _beat_once(self, lease: str) -> None:
        with self._write("renew the proxy lease in", chain=False) as tx:
            tx.conn.execute(
                f"INSERT INTO proxy_leases (lease, host, pid, started, heartbeat, ttl) VALUES (%s, %s, %s, {NOW}, {NOW}, %s)"
                f" ON CONFLICT (lease) DO UPDATE SET heartbeat = {NOW}",
                (lease, socket.gethostname(), os.getpid(), LEASE_SECONDS))

    def _heartbeat(self, lease: str) -> None:
        while not self._closed.wait(LEASE_SECONDS / 3):
            if self._lease != lease:
                return
            try:
                self._beat_once(lease)
            except StoreError as exc:  # the lease may lapse: others then see this proxy as gone
                log.error("%s", exc)

    def release_lease(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            with self._write("release the proxy lease in", chain=False) as tx:
                tx.conn.execute("DELETE FROM proxy_leases WHERE lease = %s", (lease,))

    def _gone(self, conn: psycopg.Connection[Any], held: HeldCall) -> str | None:
        if held.proxy_host == socket.gethostname() and held.proxy_pid is not None and not pid_alive(held.proxy_pid):
            return f"the proxy process {held.proxy_pid} that held it is gone: it has exited"
        if not held.proxy_lease:
            return None  # held without a lease (cannot happen here): may be alive
        row = conn.execute(f"SELECT {NOW} - heartbeat AS age, ttl FROM proxy_leases WHERE lease = %s",
                           (held.proxy_lease,)).fetchone()
        where = f"the proxy process {held.proxy_pid} on {held.proxy_host or 'its host'}"
        if row is None:
            return f"{where} that held it is gone (its lease was released or has lapsed)"
        if row["age"] > row["ttl"]:
            return f"{where} that held it is gone: no heartbeat for {row['age']:.0f}s"
        return None

    def proxy_gone(self, held: HeldCall) -> str | None:
        try:
            with self._pool.connection() as conn:
                return self._gone(conn, held)
        except (PoolTimeout, psycopg.Error) as exc:
            raise self._fail("read", exc) from exc

    def remove_stale_leases(self) -> int:
        with self._write("tidy the proxy leases in", chain=False) as tx:
            return tx.conn.execute(f"DELETE FROM proxy_leases WHERE {NOW} - heartbeat > ttl").rowcount

    def note_proxy(self, info: dict[str, Any], alive: Callable[[int], bool]) -> None:
        """Record which policy this proxy runs (`proxy:<host>:<pid>`); drop this host's dead ones."""
        host, pid = info["host"], info["pid"]
        with self._write(chain=False) as tx:
            for row in tx.conn.execute("SELECT key FROM state WHERE key LIKE %s",
                                       (f"proxy:{host.replace('%', '_')}:%",)).fetchall():
                other = row["key"].rsplit(":", 1)[1]
                if other.isdigit() and int(other) != pid and not alive(int(other)):
                    tx.conn.execute("DELETE FROM state WHERE key = %s", (row["key"],))
            tx.conn.execute("INSERT INTO state (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE"
                            " SET value = EXCLUDED.value", (f"proxy:{host}:{pid}", _text(canonical_json(info))))
            tx.topics.add("proxies")

    def proxies(self) -> list[dict[str, Any]]:
        return [json.loads(r["value"]) for r in self._read("SELECT value FROM state WHERE key LIKE 'proxy:%' ORDER BY key")]

    # ------------------------------------------------------------------ held calls

    def insert_held(self, row: dict[str, Any], audit: dict[str, Any], token: dict[str, Any] | None = None) -> HeldCall:
        """Insert a pending call (killed at once if the kill switch is on) and its `held` audit row."""
        row = _clean({**row, "proxy_host": row.get("proxy_host") or socket.gethostname()})
        with self._write("hold a call in") as tx:
            kill = self._kill(tx)
            for _ in range(5):
                held_id = row.get("id") or new_id("h")
                values = {**row, "id": held_id, "status": "pending"}
                inserted = tx.one(sql.SQL("{} ON CONFLICT (id) DO NOTHING RETURNING *").format(_insert("held", values)),
                                  list(values.values()))
                if inserted is not None or row.get("id"):
                    break
            if inserted is None:
                raise StoreError(f"cannot insert held call {held_id}: the id is taken")
            held = _held(inserted)
            self._append(tx, {**audit, "held_id": held_id, "decision": "held"})
            if kill.on:
                held = self._transition(tx, held, _killed(kill)) or held
            if token is not None:
                spend = {"held_id": held_id, "server": values["server"], "tool": values["tool"],
                         "args_hash": values["args_hash"], "policy_hash": _text(token["policy_hash"]),
                         "expires": token["expires"]}
                tx.conn.execute(_insert("retry_tokens", spend), list(spend.values()))
            tx.topics.update(("new", held_id))
        return held

    def get_held(self, held_id: str) -> HeldCall | None:
        row = self._read_one("SELECT * FROM held WHERE id = %s", (_text(held_id),))
        return None if row is None else _held(row)

    def list_held(self, status: str | None = "pending", limit: int = 500) -> list[HeldCall]:
        if status is None:
            rows = self._read("SELECT * FROM held ORDER BY created DESC LIMIT %s", (limit,))
        else:
            rows = self._read("SELECT * FROM held WHERE status = %s ORDER BY created LIMIT %s", (status, limit))
        return [_held(r) for r in rows]

    def recently_gone(self, since: float) -> list[HeldCall]:
        rows = self._read("SELECT * FROM held WHERE status = ANY(%s) AND created >= %s AND decided_at >= %s"
                          " ORDER BY decided_at LIMIT 200", (list(GONE), since - GONE_LOOKBACK, since))
        return [_held(r) for r in rows]

    def resolve(self, held_id: str, resolution: Resolution) -> HeldCall:
        """Move a pending call to its final status; the first resolution wins, later ones raise.
        A `live_only` resolution checks the proxy's lease in the same transaction (see SQLiteStore)."""
        held_id = _text(held_id)
        with self._write() as tx:
            found = tx.one("SELECT * FROM held WHERE id = %s", (held_id,))
            if found is None:
                raise UnknownCallError(f"no held call {held_id}")
            held = _held(found)
            gone = None
            if resolution.live_only and held.status == "pending" and held.hold_mode == "wait":
                gone = self._gone(tx.conn, held)
            if gone is None:
                done = self._transition(tx, held, resolution)
                if done is not None:
                    return done
            else:
                self._transition(tx, held, Resolution("abandoned", "signoff", "signoff", gone))
            error = _already(_held(tx.one("SELECT * FROM held WHERE id = %s", (held_id,))))  # type: ignore[arg-type]
        raise error  # after the commit: an abandonment stays recorded

    def resolve_many(self, where: Callable[[HeldCall], bool], resolution: Callable[[HeldCall], Resolution]) -> list[HeldCall]:
        with self._write() as tx:
            return self._resolve_pending(tx, where, resolution)

    def _resolve_pending(self, tx: _Tx, where: Callable[[HeldCall], bool],
                         resolution: Callable[[HeldCall], Resolution]) -> list[HeldCall]:
        done = []
        for row in tx.conn.execute("SELECT * FROM held WHERE status = 'pending' ORDER BY created").fetchall():
            held = _held(row)
            if where(held):
                moved = self._transition(tx, held, resolution(held))
                if moved is not None:
                    done.append(moved)
        return done

    def record_outcome(self, held_id: str, outcome: str, audit: dict[str, Any]) -> bool:
        with self._write() as tx:
            if tx.conn.execute("UPDATE held SET outcome = %s WHERE id = %s AND outcome IS NULL",
                               (_text(outcome), held_id)).rowcount != 1:
                return False
            self._append(tx, audit)
            tx.topics.add(held_id)
            return True

    def _transition(self, tx: _Tx, held: HeldCall, res: Resolution) -> HeldCall | None:
        """The conditional move out of `pending` (None if another decision won) and its audit row."""
        edited = _text(edited_json(held, res))
        now = time.time()
        row = tx.one("UPDATE held SET status = %s, decided_by = %s, channel = %s, decision_reason = %s,"
                     " decided_at = %s, edited_arguments = %s WHERE id = %s AND status = 'pending' RETURNING *",
                     (res.status, _text(res.by), _text(res.channel), _text(res.reason), now, edited, held.id))
        if row is None:
            return None
        self._append(tx, transition_audit(held, res, edited, now))
        if res.remember and res.status == "approved":
            values = _clean(remembered_values(held, res, now))
            tx.conn.execute(_insert("remembered", values), list(values.values()))
        tx.topics.add(held.id)
        return _held(row)

    # ------------------------------------------------------------------ kill switch

    def _kill(self, tx: _Tx) -> KillState:
        row = tx.one("SELECT value FROM state WHERE key = 'kill'")
        return KillState(False) if row is None else KillState(**json.loads(row["value"]))

    def get_kill(self) -> KillState:
        row = self._read_one("SELECT value FROM state WHERE key = 'kill'")
        return KillState(False) if row is None else KillState(**json.loads(row["value"]))

    def set_kill(self, state: KillState, resolution: Callable[[HeldCall], Resolution] | None) -> list[HeldCall]:
        """Set the kill switch (under the head lock, so no call is held after it unkilled); with
        `resolution`, every pending call is resolved in the same commit."""
        with self._write("set the kill switch in") as tx:
            tx.conn.execute("INSERT INTO state (key, value) VALUES ('kill', %s) ON CONFLICT (key) DO UPDATE"
                            " SET value = EXCLUDED.value", (_text(json.dumps(asdict(state))),))
            tx.topics.add("kill")
            return [] if resolution is None else self._resolve_pending(tx, lambda h: True, resolution)

    # ------------------------------------------------------------------ remembered decisions

    def remembered(self, *, include_revoked: bool = False) -> list[Remembered]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return [_remembered(r) for r in self._read(f"SELECT * FROM remembered{where} ORDER BY created")]

    def match_remembered(self, server: str, tool: str, session: str, args_hash: str) -> Remembered | None:
        row = self._read_one(
            "SELECT * FROM remembered WHERE revoked_at IS NULL AND server = %s AND tool = %s AND (kind = 'tool'"
            " OR (kind = 'args' AND args_hash = %s) OR (kind = 'session' AND session = %s AND session != ''))"
            " ORDER BY created LIMIT 1", (_text(server), _text(tool), args_hash, _text(session)))
        return None if row is None else _remembered(row)

    def revoke_remembered(self, rule_id: str, by: str) -> Remembered:
        with self._write("revoke in", chain=False) as tx:
            changed = tx.conn.execute("UPDATE remembered SET revoked_at = %s, revoked_by = %s WHERE id = %s"
                                      " AND revoked_at IS NULL", (time.time(), _text(by), _text(rule_id))).rowcount
            row = tx.one("SELECT * FROM remembered WHERE id = %s", (_text(rule_id),))
            tx.topics.add("remembered")
        if row is None:
            raise UnknownCallError(f"no remembered decision {rule_id}")
        if changed != 1:
            raise AlreadyDecidedError(f"remembered decision {rule_id} was already revoked")
        return _remembered(row)

    # ------------------------------------------------------------------ retry tokens

    def find_retry(self, server: str, tool: str, args_hash: str, policy_hash: str, now: float) -> str | None:
        row = self._read_one(
            "SELECT held_id FROM retry_tokens WHERE server = %s AND tool = %s AND args_hash = %s AND policy_hash = %s"
            " AND used_at IS NULL AND expires > %s ORDER BY expires DESC LIMIT 1",
            (_text(server), _text(tool), args_hash, _text(policy_hash), now))
        return None if row is None else row["held_id"]

    def use_retry(self, held_id: str, now: float) -> bool:
        """Spend a token; False if someone spent it first (single use across hosts)."""
        with self._write("spend a retry token in", chain=False) as tx:
            return tx.conn.execute("UPDATE retry_tokens SET used_at = %s WHERE held_id = %s AND used_at IS NULL"
                                   " AND expires > %s", (now, held_id, now)).rowcount == 1

    # ------------------------------------------------------------------ audit

    def _append(self, tx: _Tx, content: dict[str, Any]) -> int:
        """Chain one row onto the head this transaction locked."""
        assert tx.head is not None, "audit rows are appended only in a chained write"
        row = chain_row(_clean(content), tx.head, self.key)
        tx.conn.execute(_insert("audit", row), list(row.values()))
        tx.head, tx.moved = (row["id"], row["hash"]), True
        return row["id"]

    def append_audit(self, content: dict[str, Any]) -> int:
        with self._write("append to") as tx:
            return self._append(tx, content)

    def audit_head(self) -> tuple[int, str] | None:
        row = self._read_one("SELECT id, hash FROM audit_head")
        return None if row is None or row["id"] == 0 else (row["id"], row["hash"])

    def audit_counts(self) -> list[tuple[str, str, str, int]]:
        return [(r["server"], r["tool"], r["decision"], r["n"]) for r in self._read(
            "SELECT server, tool, decision, count(*) AS n FROM audit GROUP BY server, tool, decision")]

    def audit_similar(self, server: str, tool: str, decisions: Sequence[str], exclude_held: str,
                      limit: int) -> list[dict[str, Any]]:
        return self._read(
            "SELECT time, decision, decided_by, reason, arguments FROM audit WHERE server = %s AND tool = %s"
            " AND decision = ANY(%s) AND (held_id IS NULL OR held_id != %s) ORDER BY id DESC LIMIT %s",
            (_text(server), _text(tool), list(decisions), _text(exclude_held), limit))

    def audit_rows(self, *, decision: str | None = None, since: str | None = None,
                   until: str | None = None) -> Iterator[dict[str, Any]]:
        """Rows in chain order, streamed through a server-side cursor (a large trail is not loaded)."""
        clauses, params = [], []
        for clause, value in (("decision = %s", decision), ("time >= %s", since), ("time < %s", until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        try:
            with self._pool.connection() as conn, conn.transaction():
                with conn.cursor(name="signoff_audit") as cursor:
                    cursor.itersize = 2000
                    cursor.execute(f"SELECT * FROM audit{where} ORDER BY id", params)
                    yield from cursor
        except (PoolTimeout, psycopg.Error) as exc:
            raise self._fail("read the audit trail of", exc) from exc
