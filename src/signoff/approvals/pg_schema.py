"""The PostgreSQL store's schema, its migrations, and the text PostgreSQL accepts.

Versioned like SQLite's (store.MIGRATIONS): `signoff_schema.version` says how many have run.
`migrate` runs them under a transaction-scoped advisory lock, so several proxies, pages and CLIs
starting at once against a new or older database queue there and each step runs exactly once.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from signoff.approvals.audit import GENESIS
from signoff.approvals.records import apply_migrations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the schema of SQLite's migrations 1-8 (held calls, audit with identity, people and their
        # secrets), plus the chain head and proxy leases
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
        """INSERT INTO state (key, value) VALUES ('kill', '{"at": null, "by": "", "on": false, "reason": ""}')""",
        """CREATE TABLE remembered (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, server TEXT NOT NULL, tool TEXT NOT NULL,
            session TEXT, args_hash TEXT, arguments TEXT, created DOUBLE PRECISION NOT NULL, created_by TEXT,
            held_id TEXT, revoked_at DOUBLE PRECISION, revoked_by TEXT)""",
        "CREATE INDEX remembered_tool ON remembered(server, tool)",
        """CREATE TABLE retry_tokens (
            held_id TEXT PRIMARY KEY, server TEXT NOT NULL, tool TEXT NOT NULL, args_hash TEXT NOT NULL,
            policy_hash TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL, used_at DOUBLE PRECISION)""",
        "CREATE INDEX retry_call ON retry_tokens(server, tool, args_hash, policy_hash)",
        """CREATE TABLE users (
            name TEXT PRIMARY KEY, roles TEXT NOT NULL, password_hash TEXT NOT NULL, totp_secret TEXT,
            totp_step BIGINT NOT NULL DEFAULT 0, passkeys TEXT NOT NULL DEFAULT '[]',
            created DOUBLE PRECISION NOT NULL, created_by TEXT)""",
        """CREATE TABLE user_secrets (
            hash TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
            expires DOUBLE PRECISION, used_at DOUBLE PRECISION)""",
        "CREATE INDEX user_secrets_name ON user_secrets(name)",
        """CREATE TABLE proxy_leases (
            lease TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started DOUBLE PRECISION NOT NULL,
            heartbeat DOUBLE PRECISION NOT NULL, ttl DOUBLE PRECISION NOT NULL)""",
    ),
    (  # 2: SQLite's migration 9, team mode's votes: one row per counted vote (approvals/votes.py)
        """CREATE TABLE votes (
            id BIGSERIAL PRIMARY KEY, held_id TEXT NOT NULL, args_hash TEXT NOT NULL, person TEXT NOT NULL,
            person_key TEXT NOT NULL, decided_by TEXT NOT NULL, roles TEXT NOT NULL,
            vote TEXT NOT NULL CHECK (vote IN ('approve', 'deny')), reason TEXT, channel TEXT,
            at DOUBLE PRECISION NOT NULL, UNIQUE (held_id, args_hash, person_key, vote))""",
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


def text(value: Any) -> Any:
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


def clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: text(v) for k, v in row.items()}


def lock_key(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "big", signed=True)


def insert(table: str, row: dict[str, Any]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, row)), sql.SQL(", ").join(sql.Placeholder() * len(row))
    )


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def migrate(conn: psycopg.Connection[Any], schema: str, where: str) -> None:
    """Bring `schema` up to date (in the caller's transaction, under the advisory lock)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("signoff-migrate", schema),))
    conn.execute("CREATE TABLE IF NOT EXISTS signoff_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM signoff_schema").fetchone()
    if row is None:
        conn.execute("INSERT INTO signoff_schema (version) VALUES (0)")
    version = row["version"] if row else 0
    if apply_migrations(conn.execute, MIGRATIONS, version, f"the signoff store {where}"):
        conn.execute("UPDATE signoff_schema SET version = %s", (len(MIGRATIONS),))
