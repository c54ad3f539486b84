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

import json
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from signoff.approvals.audit import audit_key
from signoff.approvals.liveness import pid_alive
from signoff.approvals.pg_listen import Changes
from signoff.approvals.pg_schema import clean, describe, first_line, insert, migrate, text
from signoff.approvals.records import (
    GONE,
    GONE_LOOKBACK,
    USER_CHANGES,
    HeldCall,
    KillState,
    Remembered,
    Resolution,
    _already,
    _held,
    _killed,
    _remembered,
    attach_votes,
    chain_row,
    edited_json,
    new_id,
    remembered_values,
    transition_audit,
)
from signoff.approvals.votes import Ballot, count
from signoff.errors import AlreadyDecidedError, StoreError, UnknownCallError, VoteRefusedError
from signoff.model import canonical_json

log = logging.getLogger("signoff.store_pg")

LEASE_SECONDS = float(os.environ.get("SIGNOFF_LEASE_SECONDS", "15"))
"""A proxy whose heartbeat is older than this is gone (it beats every third of it)."""
REREAD_SECONDS = 30.0
"""A waiting hold re-reads its row this often even without a NOTIFY (belt and braces only)."""
POOL_SIZE = int(os.environ.get("SIGNOFF_STORE_POOL", "4"))
WRITE_WAIT = 5.0
"""Seconds a write may queue (pool, then locks) before it fails closed: the chain head serialises
every host's audit rows, so bursts of calls queue there."""
IDLE_IN_TRANSACTION_MS = 10_000
"""A session stuck inside a transaction (a hung process) loses it, and the head lock, after this."""

NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
"""The database's clock: every host's leases are measured by the same one."""


def clean_ballot(ballot: Ballot) -> Ballot:
    """The ballot as stored (text PostgreSQL accepts), before it is compared with stored votes."""
    return replace(
        ballot,
        person=text(ballot.person),
        by=text(ballot.by),
        reason=text(ballot.reason),
        roles=tuple(text(r) for r in ballot.roles),
    )


class _Tx:
    """One write transaction: its connection, the audit rows to chain at its end, the topics to NOTIFY."""

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn
        self.audit: list[dict[str, Any]] = []
        self.last_id: int | None = None
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
    remote = True
    witness: Path | None = None

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000):
        self.url = url
        self.where = describe(url)
        self.key = audit_key()
        self.wait = max(1.0, busy_timeout_ms / 1000)
        """The longest wait for a pooled connection to read (the kill switch is read on the event loop)."""
        self.wait_write = max(WRITE_WAIT, busy_timeout_ms / 1000)
        """...and to write: for a connection, then for the locks (lock_timeout); then it fails closed."""
        pool = dict(
            kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 5, "application_name": "signoff"},
            configure=self._configure,
            check=ConnectionPool.check_connection,
            reconnect_timeout=0,
        )
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(2, POOL_SIZE),
            open=False,
            timeout=self.wait,
            name="signoff-write",
            **pool,  # type: ignore[arg-type]
        )
        self._reads = ConnectionPool(
            url,
            min_size=1,
            max_size=2,
            open=False,
            timeout=self.wait,
            name="signoff-read",
            **pool,  # type: ignore[arg-type]
        )
        """Reads have their own connections: a waiting hold's re-read never queues behind writes
        that wait for the chain head (a burst of new calls)."""
        try:
            for opening in (self._pool, self._reads):
                opening.open(wait=True, timeout=self.wait)  # a proxy keeps serving (refusing) meanwhile
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            self._reads.close()
            raise StoreError(
                f"cannot reach the signoff store {self.where}: {first_line(exc)}; is the PostgreSQL "
                "server up and SIGNOFF_STORE right?"
            ) from None
        self.schema = self._read_one("SELECT current_schema() AS s")["s"]  # type: ignore[index]
        if self.schema is None:
            self.close()
            raise StoreError(f"the signoff store {self.where}: the schema in its search_path does not exist; create it")
        self.channel = f"signoff:{self.schema}"
        self._migrate()
        self.changes = Changes(url, self.channel, self.where)
        self._closed = threading.Event()
        # this process's proxy lease
        self._lease: str | None = None
        self._beat: threading.Thread | None = None
        _OPEN.add(self)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET lock_timeout = {int(self.wait_write * 1000)}")
        conn.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")

    # ------------------------------------------------------------------ connections

    def _fail(self, what: str, exc: BaseException) -> StoreError:
        if isinstance(exc, PoolTimeout):
            return StoreError(
                f"cannot {what} the signoff store {self.where}: no connection in time (is the PostgreSQL server up?)"
            )
        return StoreError(f"cannot {what} the signoff store {self.where}: {first_line(exc)}")

    @contextmanager
    def _write(self, what: str = "write") -> Iterator[_Tx]:
        """One transaction. Its audit rows are chained at its very end, under a lock on the chain's
        head row: appenders on every host queue there, so ids follow commit order without gaps,
        and the lock is held for three round trips only. Whoever holds it waits for no other
        lock, so the row locks taken before it cannot deadlock."""
        try:
            with self._pool.connection(timeout=self.wait_write) as conn, conn.transaction():
                tx = _Tx(conn)
                yield tx
                if tx.audit:
                    row = cast(dict[str, Any], conn.execute("SELECT id, hash FROM audit_head FOR UPDATE").fetchone())
                    head = (row["id"], row["hash"])
                    with conn.pipeline():
                        for content in tx.audit:
                            chained = chain_row(clean(content), head, self.key)
                            conn.execute(insert("audit", chained), list(chained.values()))
                            head = (chained["id"], chained["hash"])
                        conn.execute("UPDATE audit_head SET id = %s, hash = %s", head)
                        if tx.topics:
                            conn.execute(
                                "SELECT pg_notify(%s, t) FROM unnest(%s::text[]) AS t", (self.channel, sorted(tx.topics))
                            )
                    tx.last_id = head[0]
                elif tx.topics:
                    conn.execute("SELECT pg_notify(%s, t) FROM unnest(%s::text[]) AS t", (self.channel, sorted(tx.topics)))
        except (PoolTimeout, psycopg.Error) as exc:
            raise self._fail(what, exc) from exc

    def _read(self, query: Any, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            with self._reads.connection() as conn:
                return cast(list[dict[str, Any]], conn.execute(query, params).fetchall())  # dict_row pools
        except (PoolTimeout, psycopg.Error) as exc:
            raise self._fail("read", exc) from exc

    def _read_one(self, query: Any, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._read(query, params)
        return rows[0] if rows else None

    def _migrate(self) -> None:
        try:
            with self._pool.connection() as conn, conn.transaction():
                migrate(conn, self.schema, self.where)
        except StoreError:
            self.close()
            raise
        except (PoolTimeout, psycopg.Error) as exc:
            self.close()
            raise self._fail("migrate", exc) from exc

    def close(self) -> None:
        self._closed = getattr(self, "_closed", threading.Event())
        self._closed.set()
        if hasattr(self, "changes"):
            self.changes.close()
        self._pool.close()
        self._reads.close()
        _OPEN.discard(self)

    # ------------------------------------------------------------------ changes: LISTEN/NOTIFY

    def change_token(self, topic: str | None = None) -> int:
        """Moves on every change (with `topic`: to that held call or `kill`), and after the LISTEN
        connection was made again. No query: the LISTEN thread keeps it (pg_listen.py)."""
        return self.changes.token(topic)

    async def wait_change(self, token: int, timeout: float, *, topic: str | None = None, poll: float = 0.05) -> int:
        """Wait until the token for `topic` moves (a NOTIFY, or a reconnect) or `timeout` passes."""
        return await self.changes.wait(token, timeout, topic)

    def queue_signature(self) -> str:
        rows = self._read("SELECT id, deadline FROM held WHERE status = 'pending' ORDER BY created")
        kill = self._read_one("SELECT value FROM state WHERE key = 'kill'")
        last_vote = self._read_one("SELECT max(id) AS id FROM votes")["id"]  # type: ignore[index]
        return canonical_json([[r["id"], r["deadline"]] for r in rows] + [kill["value"] if kill else None, last_vote])

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
        with self._write("renew the proxy lease in") as tx:
            self._renew(tx, lease)

    def _renew(self, tx: _Tx, lease: str) -> None:
        tx.conn.execute(
            f"INSERT INTO proxy_leases (lease, host, pid, started, heartbeat, ttl) VALUES (%s, %s, %s, {NOW}, {NOW}, %s)"
            f" ON CONFLICT (lease) DO UPDATE SET heartbeat = {NOW}",
            (lease, socket.gethostname(), os.getpid(), LEASE_SECONDS),
        )

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
            with self._write("release the proxy lease in") as tx:
                tx.conn.execute("DELETE FROM proxy_leases WHERE lease = %s", (lease,))

    def _gone(self, conn: psycopg.Connection[Any], held: HeldCall) -> str | None:
        if held.proxy_host == socket.gethostname() and held.proxy_pid is not None and not pid_alive(held.proxy_pid):
            return f"the proxy process {held.proxy_pid} that held it is gone: it has exited"
        if not held.proxy_lease:
            return None  # held without a lease (cannot happen here): may be alive
        row = conn.execute(
            f"SELECT {NOW} - heartbeat AS age, ttl FROM proxy_leases WHERE lease = %s", (held.proxy_lease,)
        ).fetchone()
        where = f"the proxy process {held.proxy_pid} on {held.proxy_host or 'its host'}"
        if row is None:
            return f"{where} that held it is gone (its lease was released or has lapsed)"
        if row["age"] > row["ttl"]:
            return f"{where} that held it is gone: no heartbeat for {row['age']:.0f}s"
        return None

    def proxy_gone(self, held: HeldCall) -> str | None:
        try:
            with self._reads.connection() as conn:
                return self._gone(conn, held)
        except (PoolTimeout, psycopg.Error) as exc:
            raise self._fail("read", exc) from exc

    def remove_stale_leases(self) -> int:
        with self._write("tidy the proxy leases in") as tx:
            return tx.conn.execute(f"DELETE FROM proxy_leases WHERE {NOW} - heartbeat > ttl").rowcount

    def note_proxy(self, info: dict[str, Any], alive: Callable[[int], bool]) -> None:
        """Record which policy this proxy runs (`proxy:<host>:<pid>`); drop this host's dead ones."""
        host, pid = info["host"], info["pid"]
        with self._write() as tx:
            prefix = f"proxy:{host}:"
            for row in tx.conn.execute("SELECT key FROM state WHERE left(key, %s) = %s", (len(prefix), prefix)).fetchall():
                other = row["key"].rsplit(":", 1)[1]
                if other.isdigit() and int(other) != pid and not alive(int(other)):
                    tx.conn.execute("DELETE FROM state WHERE key = %s", (row["key"],))
            tx.conn.execute(
                "INSERT INTO state (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (f"proxy:{host}:{pid}", text(canonical_json(info))),
            )
            tx.topics.add("proxies")

    def proxies(self) -> list[dict[str, Any]]:
        return [json.loads(r["value"]) for r in self._read("SELECT value FROM state WHERE left(key, 6) = 'proxy:' ORDER BY key")]

    # ------------------------------------------------------------------ held calls

    def insert_held(self, row: dict[str, Any], audit: dict[str, Any], token: dict[str, Any] | None = None) -> HeldCall:
        """Insert a pending call (killed at once if the kill switch is on) and its `held` audit row."""
        row = clean({**row, "proxy_host": row.get("proxy_host") or socket.gethostname()})
        with self._write("hold a call in") as tx:
            kill = self._kill(tx)
            for _ in range(5):
                held_id = row.get("id") or new_id("h")
                values = {**row, "id": held_id, "status": "pending"}
                inserted = tx.one(
                    sql.SQL("{} ON CONFLICT (id) DO NOTHING RETURNING *").format(insert("held", values)), list(values.values())
                )
                if inserted is not None or row.get("id"):
                    break
            if inserted is None:
                raise StoreError(f"cannot insert held call {held_id}: the id is taken")
            held = _held(inserted)
            if self._lease is not None and held.proxy_lease == self._lease:  # fresh, even right after an outage
                self._renew(tx, self._lease)
            self._append(tx, {**audit, "held_id": held_id, "decision": "held"})
            if kill.on:
                held = self._transition(tx, held, _killed(kill)) or held
            if token is not None:
                spend = {
                    "held_id": held_id,
                    "server": values["server"],
                    "tool": values["tool"],
                    "args_hash": values["args_hash"],
                    "policy_hash": text(token["policy_hash"]),
                    "expires": token["expires"],
                }
                tx.conn.execute(insert("retry_tokens", spend), list(spend.values()))
            tx.topics.update(("new", held_id))
        return held

    def get_held(self, held_id: str) -> HeldCall | None:
        row = self._read_one("SELECT * FROM held WHERE id = %s", (text(held_id),))
        return None if row is None else _held(row)

    def list_held(self, status: str | None = "pending", limit: int = 500) -> list[HeldCall]:
        if status is None:
            rows = self._read("SELECT * FROM held ORDER BY created DESC LIMIT %s", (limit,))
        else:
            rows = self._read("SELECT * FROM held WHERE status = %s ORDER BY created LIMIT %s", (status, limit))
        return [_held(r) for r in rows]

    def recently_gone(self, since: float) -> list[HeldCall]:
        rows = self._read(
            "SELECT * FROM held WHERE status = ANY(%s) AND created >= %s AND decided_at >= %s ORDER BY decided_at LIMIT 200",
            (list(GONE), since - GONE_LOOKBACK, since),
        )
        return [_held(r) for r in rows]

    def resolve(self, held_id: str, resolution: Resolution) -> HeldCall:
        """Move a pending call to its final status; the first resolution wins, later ones raise.
        A `live_only` resolution checks the proxy's lease in the same transaction (see SQLiteStore)."""
        held_id = text(held_id)
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

    def vote(self, held_id: str, ballot: Ballot) -> HeldCall:
        """As SQLiteStore.vote: the vote, its audit row, the re-count (votes.count) and the call's
        resolution in one transaction; the held row is locked first (FOR UPDATE), so votes on one
        call queue there and each re-count sees every vote committed before it."""
        with self._write("vote in") as tx:
            row = tx.one("SELECT * FROM held WHERE id = %s FOR UPDATE", (text(held_id),))
            if row is None:
                raise UnknownCallError(f"no held call {held_id}")
            held = _held(row)
            gone = self._gone(tx.conn, held) if held.status == "pending" and held.hold_mode == "wait" else None
            if held.status != "pending" or gone is not None:
                if gone is not None:
                    held = self._transition(tx, held, Resolution("abandoned", "signoff", "signoff", gone)) or held
                error: Exception = _already(held)
            else:
                rows = tx.conn.execute("SELECT * FROM votes WHERE held_id = %s ORDER BY id", (held.id,)).fetchall()
                counted = count(held, rows, clean_ballot(ballot), time.time())
                self._append(tx, counted.audit)
                if counted.refused is None:
                    vote = clean(counted.row)
                    tx.conn.execute(insert("votes", vote), list(vote.values()))
                    tx.topics.add(held.id)  # pages and CLIs waiting on this call see the vote
                    resolution = counted.resolution
                    done = held if resolution is None else self._transition(tx, held, resolution)
                    if done is None:
                        raise AssertionError(f"{held.id} left pending inside the vote's transaction")
                    return replace(done, votes=(*rows, vote))
                error = VoteRefusedError(counted.refused)
        raise error  # after the commit: the refused vote's audit row (or the abandonment) stays

    def with_votes(self, calls: Sequence[HeldCall]) -> list[HeldCall]:
        wanted = [h.id for h in calls if not h.requirements.default]
        if not wanted:
            return list(calls)
        return attach_votes(calls, self._read("SELECT * FROM votes WHERE held_id = ANY(%s) ORDER BY id", (wanted,)))

    def resolve_many(self, where: Callable[[HeldCall], bool], resolution: Callable[[HeldCall], Resolution]) -> list[HeldCall]:
        with self._write() as tx:
            return self._resolve_pending(tx, where, resolution)

    def _resolve_pending(
        self, tx: _Tx, where: Callable[[HeldCall], bool], resolution: Callable[[HeldCall], Resolution]
    ) -> list[HeldCall]:
        rows = tx.conn.execute("SELECT * FROM held WHERE status = 'pending' ORDER BY created").fetchall()
        chosen = [held for held in map(_held, rows) if where(held)]
        return self._transition_many(tx, [(held, resolution(held)) for held in chosen])

    def record_outcome(self, held_id: str, outcome: str, audit: dict[str, Any]) -> bool:
        with self._write() as tx:
            if (
                tx.conn.execute(
                    "UPDATE held SET outcome = %s WHERE id = %s AND outcome IS NULL", (text(outcome), held_id)
                ).rowcount
                != 1
            ):
                return False
            self._append(tx, audit)
            tx.topics.add(held_id)
            return True

    def _transition(self, tx: _Tx, held: HeldCall, res: Resolution) -> HeldCall | None:
        """The conditional move out of `pending` (None if another decision won) and its audit row."""
        moved = self._transition_many(tx, [(held, res)])
        return moved[0] if moved else None

    def _transition_many(self, tx: _Tx, moves: Sequence[tuple[HeldCall, Resolution]]) -> list[HeldCall]:
        """The conditional moves out of `pending` in one statement (a kill resolving thousands of
        calls must not hold the switch's lock for a round trip per call), each with its audit row;
        a call another decision already moved is left out."""
        if not moves:
            return []
        now = time.time()
        edited = {held.id: text(edited_json(held, res)) for held, res in moves}
        columns = (
            [held.id for held, _ in moves],
            [res.status for _, res in moves],
            [text(res.by) for _, res in moves],
            [text(res.channel) for _, res in moves],
            [text(res.reason) for _, res in moves],
            [edited[held.id] for held, _ in moves],
        )
        rows = tx.conn.execute(
            "UPDATE held SET status = v.status, decided_by = v.by, channel = v.channel, decision_reason = v.reason,"
            " decided_at = %s, edited_arguments = v.edited"
            " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
            " AS v(id, status, by, channel, reason, edited)"
            " WHERE held.id = v.id AND held.status = 'pending' RETURNING held.*",
            (now, *columns),
        ).fetchall()
        moved = {row["id"]: _held(row) for row in rows}
        done = []
        for held, res in moves:  # audit rows in the order the calls were given
            if held.id not in moved:
                continue
            self._append(tx, transition_audit(held, res, edited[held.id], now))
            if res.remember and res.status == "approved":
                values = clean(remembered_values(held, res, now))
                tx.conn.execute(insert("remembered", values), list(values.values()))
            tx.topics.add(held.id)
            done.append(moved[held.id])
        return done

    # ------------------------------------------------------------------ kill switch

    def _kill(self, tx: _Tx) -> KillState:
        """The kill switch, share-locked: `set_kill` waits for this transaction, and a call held
        after the switch was set sees it (the row exists from the first migration)."""
        row = tx.one("SELECT value FROM state WHERE key = 'kill' FOR SHARE")
        return KillState(False) if row is None else KillState(**json.loads(row["value"]))

    def get_kill(self) -> KillState:
        row = self._read_one("SELECT value FROM state WHERE key = 'kill'")
        return KillState(False) if row is None else KillState(**json.loads(row["value"]))

    def set_kill(self, state: KillState, resolution: Callable[[HeldCall], Resolution] | None) -> list[HeldCall]:
        """Set the kill switch (under the head lock, so no call is held after it unkilled); with
        `resolution`, every pending call is resolved in the same commit."""
        with self._write("set the kill switch in") as tx:
            # A table lock queues fairly: holds arriving now wait behind the switch. A row lock
            # does not (new FOR SHARE lockers join the sharers ahead of a waiting writer), so a
            # steady stream of holds starved the switch while thousands of calls piled up.
            tx.conn.execute("LOCK TABLE state IN EXCLUSIVE MODE")
            tx.conn.execute(
                "INSERT INTO state (key, value) VALUES ('kill', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (text(json.dumps(asdict(state))),),
            )
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
            " ORDER BY created LIMIT 1",
            (text(server), text(tool), args_hash, text(session)),
        )
        return None if row is None else _remembered(row)

    def revoke_remembered(self, rule_id: str, by: str) -> Remembered:
        with self._write("revoke in") as tx:
            changed = tx.conn.execute(
                "UPDATE remembered SET revoked_at = %s, revoked_by = %s WHERE id = %s AND revoked_at IS NULL",
                (time.time(), text(by), text(rule_id)),
            ).rowcount
            row = tx.one("SELECT * FROM remembered WHERE id = %s", (text(rule_id),))
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
            (text(server), text(tool), args_hash, text(policy_hash), now),
        )
        return None if row is None else row["held_id"]

    def use_retry(self, held_id: str, now: float) -> bool:
        """Spend a token; False if someone spent it first (single use across hosts)."""
        with self._write("spend a retry token in") as tx:
            return (
                tx.conn.execute(
                    "UPDATE retry_tokens SET used_at = %s WHERE held_id = %s AND used_at IS NULL AND expires > %s",
                    (now, held_id, now),
                ).rowcount
                == 1
            )

    # ------------------------------------------------------------------ audit

    def _append(self, tx: _Tx, content: dict[str, Any]) -> None:
        """One audit row, chained when the transaction ends (see `_write`)."""
        tx.audit.append(content)

    def append_audit(self, content: dict[str, Any]) -> int:
        with self._write("append to") as tx:
            self._append(tx, content)
        assert tx.last_id is not None
        return tx.last_id

    def audit_head(self) -> tuple[int, str] | None:
        row = self._read_one("SELECT id, hash FROM audit_head")
        return None if row is None or row["id"] == 0 else (row["id"], row["hash"])

    def audit_counts(self) -> list[tuple[str, str, str, int]]:
        return [
            (r["server"], r["tool"], r["decision"], r["n"])
            for r in self._read("SELECT server, tool, decision, count(*) AS n FROM audit GROUP BY server, tool, decision")
        ]

    def audit_similar(
        self, server: str, tool: str, decisions: Sequence[str], exclude_held: str, limit: int
    ) -> list[dict[str, Any]]:
        return self._read(
            "SELECT time, decision, decided_by, reason, arguments FROM audit WHERE server = %s AND tool = %s"
            " AND decision = ANY(%s) AND (held_id IS NULL OR held_id != %s) ORDER BY id DESC LIMIT %s",
            (text(server), text(tool), list(decisions), text(exclude_held), limit),
        )

    def audit_rows(
        self, *, decision: str | None = None, since: str | None = None, until: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Rows in chain order, streamed through a server-side cursor (a large trail is not loaded)."""
        clauses, params = [], []
        for clause, value in (("decision = %s", decision), ("time >= %s", since), ("time < %s", until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        try:
            with self._reads.connection() as conn, conn.transaction(), conn.cursor(name="signoff_audit") as cursor:
                cursor.itersize = 2000
                cursor.execute(f"SELECT * FROM audit{where} ORDER BY id", params)
                yield from cursor
        except (PoolTimeout, psycopg.Error) as exc:
            raise self._fail("read the audit trail of", exc) from exc

    # ------------------------------------------------------------------ people (team mode)

    def add_user(self, row: dict[str, Any]) -> None:
        """Insert a person (name, roles, password_hash, totp_secret, passkeys, created, created_by)."""
        row = clean(row)
        with self._write("add a person to") as tx:
            added = tx.one(
                sql.SQL("{} ON CONFLICT (name) DO NOTHING RETURNING name").format(insert("users", row)), list(row.values())
            )
        if added is None:
            raise StoreError(f"a person named {row.get('name')!r} already exists")

    def get_user(self, name: str) -> dict[str, Any] | None:
        return self._read_one("SELECT * FROM users WHERE name = %s", (text(name),))

    def list_users(self) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM users ORDER BY name")

    def update_user(self, name: str, changes: dict[str, Any]) -> bool:
        """Change some of USER_CHANGES; False if there is no such person."""
        unknown = set(changes) - set(USER_CHANGES)
        if unknown or not changes:
            raise StoreError(f"cannot change {', '.join(sorted(unknown)) or 'nothing'} of a person")
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column in changes)
        with self._write("change a person in") as tx:
            return (
                tx.conn.execute(
                    sql.SQL("UPDATE users SET {} WHERE name = %s").format(sets), (*clean(changes).values(), text(name))
                ).rowcount
                == 1
            )

    def remove_user(self, name: str) -> bool:
        """Remove a person with their CLI tokens and enrolment links, in one commit."""
        with self._write("remove a person from") as tx:
            tx.conn.execute("DELETE FROM user_secrets WHERE name = %s", (text(name),))
            return tx.conn.execute("DELETE FROM users WHERE name = %s", (text(name),)).rowcount == 1

    def advance_totp(self, name: str, step: int) -> bool:
        """Accept TOTP time step `step` for `name` once, across hosts: False if it (or a later one) was used."""
        with self._write("record a sign-in in") as tx:
            return (
                tx.conn.execute(
                    "UPDATE users SET totp_step = %s WHERE name = %s AND totp_step < %s", (step, text(name), step)
                ).rowcount
                == 1
            )

    def add_user_secret(self, row: dict[str, Any]) -> None:
        """A CLI token or enrolment link, by its hash: (hash, name, kind, created, expires)."""
        row = clean(row)
        with self._write("add a secret to") as tx:
            tx.conn.execute(insert("user_secrets", row), list(row.values()))

    def user_secret(self, hash_: str, kind: str, now: float, *, spend: bool = False) -> dict[str, Any] | None:
        """The unexpired, unspent secret of this hash and kind whose person still exists; `spend`
        marks it used in the same statement (a one-time link works once across hosts)."""
        where = (
            "s.hash = %s AND s.kind = %s AND s.used_at IS NULL AND (s.expires IS NULL OR s.expires > %s)"
            " AND EXISTS (SELECT 1 FROM users u WHERE u.name = s.name)"
        )
        params = (text(hash_), text(kind), now)
        if not spend:
            return self._read_one(f"SELECT s.* FROM user_secrets s WHERE {where}", params)
        with self._write("spend a secret in") as tx:
            return tx.one(
                f"UPDATE user_secrets s SET used_at = %s WHERE {where} RETURNING s.hash, s.name, s.kind, s.created,"
                " s.expires, NULL::double precision AS used_at",
                (now, *params),
            )
