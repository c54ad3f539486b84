"""The people of team mode on PostgreSQL: SQLite's migration 8 (`users`, `user_secrets`) and the
Store's people methods, for `PgStore` (store_pg.py) to inherit.

The rows are the same plain dicts SQLiteStore gives (team/users.py reads both). What PostgreSQL
changes: a TOTP step and a one-time secret are claimed by one conditional UPDATE each (the
row lock makes the second of two hosts see the first's commit), and every name or hash that
came from a request goes through `text()` first (a NUL from a sign-in form is no person, not
a server error).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from psycopg import sql

from signoff.approvals.pg_schema import clean, insert, text
from signoff.errors import StoreError

MIGRATION: tuple[str, ...] = (
    # named approvers: roles as a JSON list, argon2id password hashes, TOTP secret and last step,
    # passkeys as JSON; CLI tokens and enrolment links only as SHA-256 hashes (SQLite's migration 8)
    """CREATE TABLE users (
        name TEXT PRIMARY KEY, roles TEXT NOT NULL, password_hash TEXT NOT NULL, totp_secret TEXT,
        totp_step BIGINT NOT NULL DEFAULT 0, passkeys TEXT NOT NULL DEFAULT '[]', created DOUBLE PRECISION NOT NULL,
        created_by TEXT)""",
    """CREATE TABLE user_secrets (
        hash TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION, used_at DOUBLE PRECISION)""",
    "CREATE INDEX user_secrets_name ON user_secrets(name)",
)
"""Append to pg_schema.MIGRATIONS as one step."""

USER_CHANGES = ("roles", "password_hash", "totp_secret", "passkeys")  # as store.USER_CHANGES

_SECRET = ("FROM user_secrets s JOIN users u ON u.name = s.name WHERE s.hash = %s AND s.kind = %s"
           " AND s.used_at IS NULL AND (s.expires IS NULL OR s.expires > %s)")


class _Host(Protocol):
    """What PgStore gives these methods: a write transaction (`.conn`) and pooled reads."""

    def _write(self, what: str = ...) -> AbstractContextManager[Any]: ...
    def _read(self, query: Any, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


class PgPeople:
    """The people methods of the Store protocol (see SQLiteStore's for the contract)."""

    def add_user(self: _Host, row: dict[str, Any]) -> None:
        row = clean(row)
        with self._write("add a person to") as tx:
            added = tx.conn.execute(sql.SQL("{} ON CONFLICT (name) DO NOTHING RETURNING name").format(
                insert("users", row)), list(row.values())).fetchone()
        if added is None:
            raise StoreError(f"a person named {row.get('name')!r} already exists")

    def get_user(self: _Host, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM users WHERE name = %s", (text(name),))
        return rows[0] if rows else None

    def list_users(self: _Host) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM users ORDER BY name")

    def update_user(self: _Host, name: str, changes: dict[str, Any]) -> bool:
        unknown = set(changes) - set(USER_CHANGES)
        if unknown or not changes:
            raise StoreError(f"cannot change {', '.join(sorted(unknown)) or 'nothing'} of a person")
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column in changes)
        with self._write("change a person in") as tx:
            return tx.conn.execute(sql.SQL("UPDATE users SET {} WHERE name = %s").format(sets),
                                   (*clean(changes).values(), text(name))).rowcount == 1

    def remove_user(self: _Host, name: str) -> bool:
        """The person and their CLI tokens and enrolment links, in one commit."""
        with self._write("remove a person from") as tx:
            tx.conn.execute("DELETE FROM user_secrets WHERE name = %s", (text(name),))
            return tx.conn.execute("DELETE FROM users WHERE name = %s", (text(name),)).rowcount == 1

    def advance_totp(self: _Host, name: str, step: int) -> bool:
        """Accept TOTP time step `step` once, across every host (compare-and-set on the row)."""
        with self._write("record a TOTP step in") as tx:
            return tx.conn.execute("UPDATE users SET totp_step = %s WHERE name = %s AND totp_step < %s",
                                   (step, text(name), step)).rowcount == 1

    def add_user_secret(self: _Host, row: dict[str, Any]) -> None:
        row = clean(row)
        with self._write("add a token to") as tx:
            tx.conn.execute(insert("user_secrets", row), list(row.values()))

    def user_secret(self: _Host, hash_: str, kind: str, now: float, *, spend: bool = False) -> dict[str, Any] | None:
        """The live secret of this hash and kind whose person exists; `spend` marks it used by the
        same statement, so a one-time link works once however many hosts race for it."""
        params = (text(hash_), text(kind), now)
        if not spend:
            rows = self._read(f"SELECT s.* {_SECRET}", params)
            return rows[0] if rows else None
        with self._write("spend a token in") as tx:
            spent = tx.conn.execute(
                f"UPDATE user_secrets SET used_at = %s WHERE hash = (SELECT s.hash {_SECRET} FOR UPDATE OF s)"
                " AND used_at IS NULL RETURNING *", (now, *params)).fetchone()
        return None if spent is None else {**spent, "used_at": None}

