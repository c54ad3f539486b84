"""What SQL (and NoSQL operations) touch: tables, and whether they write or delete.

sqlglot reads SQL differently from real databases in places, and each difference is a way to
hide a write: nested `/* /* */ */` comments (PostgreSQL nests them, MySQL does not), MySQL's
executable `/*! … */` comments, `#` comments (MySQL only), `--x` (a comment for PostgreSQL, not
for MySQL), dollar quoting. SQL containing any of them, SQL that does not parse, statements
sqlglot does not model, and calls to functions not known to be read-only (`dblink_exec`,
`pg_terminate_backend`, `lo_export`) all count as a write (and a delete) to every table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

ALL_TABLES = frozenset({"*"})


@dataclass(frozen=True)
class SqlTouch:
    """Tables touched, and whether anything writes / deletes. `tables == ALL_TABLES` when unreadable."""

    tables: frozenset[str]
    writes: bool
    statements: int
    deletes: bool = False
    why: str = ""
    overwrites: bool = False
    """UPDATE, MERGE, ALTER, REPLACE: existing data changes (destructive, unlike an INSERT)."""
    pii: frozenset[str] = frozenset()
    """Columns read that hold personal data or secrets (ssn, password...)."""
    """Why the SQL counts as touching every table (empty when it was read)."""


NONE = SqlTouch(frozenset(), False, 0)
MAX_LENGTH = 65_536
"""Longer SQL is not parsed (it would stall the proxy): it touches every table."""
_DISAGREE = (
    (re.compile(r"/\*!"), "a MySQL executable comment /*! */"),
    (re.compile(r"/\*(?:(?!\*/).)*/\*", re.DOTALL), "a nested /* */ comment"),
    (re.compile(r"#"), "a # (a comment in MySQL only)"),
    (re.compile(r"--(?![ \t\r\n]|$)"), "a -- comment without a space (MySQL does not read it as a comment)"),
    (re.compile(r"\$[A-Za-z_0-9]*\$"), "dollar quoting"),
    (re.compile(r"\\"), "a backslash (escapes differ between databases)"),
)
SAFE_FUNCTIONS = frozenset(
    """version current_database current_schema current_user session_user user database now pg_size_pretty
    pg_total_relation_size pg_relation_size pg_database_size pg_table_size pg_indexes_size to_char to_date
    to_timestamp date_trunc json_agg jsonb_agg json_build_object jsonb_build_object array_agg string_agg
    row_number rank dense_rank lag lead generate_series unnest format_type obj_description col_description
    quote_ident quote_literal format length lower upper trim substring replace split_part regexp_replace
    date_part extract age md5 sha256 random gen_random_uuid uuid_generate_v4 strftime datetime julianday
    typeof ifnull nullif iif group_concat json_extract json_object json_array instr printf last_insert_rowid
    changes total_changes sqlite_version""".split()
)
"""Functions that only compute (anything else may act: dblink_exec, lo_export, pg_terminate_backend)."""


def _unreadable(count: int, why: str) -> SqlTouch:
    return SqlTouch(ALL_TABLES, True, max(count, 1), True, why, True)


PII = re.compile(
    r"^(ssn|social_security(_number)?|sin|password(_hash)?|passwd|pwd|secret|api_?key|access_token|refresh_token"
    r"|token|credit_card(_number)?|card_number|cc_number|cvv|cvc|iban|passport(_number)?|tax_id|national_id"
    r"|date_of_birth|dob|private_key)$",
    re.IGNORECASE,
)
_SHOW = re.compile(r"^\s*(SHOW|DESCRIBE|DESC)\s+[\w\s.`\"]*;?\s*$", re.IGNORECASE)
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?!ANALY[SZ]E\b)(?:\((?:[^)]*)\)\s*|QUERY\s+PLAN\s+|VERBOSE\s+)?", re.IGNORECASE)


def analyze(texts: Iterable[str]) -> SqlTouch:
    """Parse each SQL text; the union of what they touch."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        return NONE
    import sqlglot
    from sqlglot import exp

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" warning would log the SQL
    reads = (exp.Query, exp.Describe, exp.Transaction, exp.Commit, exp.Rollback, exp.Show)
    deletes_ = (exp.Delete, exp.Drop, exp.TruncateTable)
    writes_ = (exp.Insert, exp.Update, exp.Merge, exp.Alter, exp.Create, exp.Copy, exp.Grant, exp.Revoke, *deletes_)
    tables: set[str] = set()
    writes = deletes = overwrites = False
    pii: set[str] = set()
    count = 0
    expanded = []
    if sum(len(t) for t in texts) > MAX_LENGTH:
        return _unreadable(len(texts), "the SQL is too long to read")
    for text in texts:
        if _SHOW.match(text):  # SHOW TABLES, DESCRIBE users: reads
            count += 1
            continue
        match = _EXPLAIN.match(text)
        expanded.append(text[match.end() :] if match else text)  # EXPLAIN (not ANALYZE) runs nothing: read what it explains
    for text in expanded:
        stripped = _without_strings(text)
        for pattern, what in _DISAGREE:
            if pattern.search(stripped):
                return _unreadable(count + 1, f"the SQL has {what}, which databases read differently")
        try:
            statements = [s for s in sqlglot.parse(text) if s is not None and not isinstance(s, exp.Semicolon)]
        except (sqlglot.errors.SqlglotError, RecursionError, ValueError):
            return _unreadable(count + 1, "the SQL could not be parsed")
        for statement in statements:
            count += 1
            if isinstance(statement, exp.Pragma) and _read_pragma(statement, exp):
                continue
            if not isinstance(statement, reads + writes_):  # a Command ("not understood"), EXEC, PRAGMA, SET…
                return _unreadable(count, f"the statement {statement.key.upper()} is not one signoff understands")
            for func in statement.find_all(exp.Anonymous):
                name = str(func.name).lower()
                if name not in SAFE_FUNCTIONS:
                    return _unreadable(count, f"the SQL calls {name}(), not known to be read-only")
            deleting = isinstance(statement, deletes_) or any(True for _ in statement.find_all(*deletes_))
            deletes = deletes or deleting
            overwrites = (
                overwrites
                or any(True for _ in statement.find_all(exp.Update, exp.Merge))
                or any(
                    not isinstance(action, exp.ColumnDef)  # ADD COLUMN is additive; DROP, RENAME, ALTER TYPE are not
                    for alter in statement.find_all(exp.Alter)
                    for action in (alter.args.get("actions") or [None])
                )
            )
            pii |= {c.name.lower() for c in statement.find_all(exp.Column) if PII.match(c.name or "")}
            writes = (
                writes
                or deleting
                or isinstance(statement, writes_)
                or bool(statement.args.get("into"))  # SELECT … INTO new_table
                or any(True for _ in statement.find_all(*writes_))  # a write inside a CTE
            )
            for table in statement.find_all(exp.Table):
                if table.name:
                    tables.add(table.name.lower())
                    if table.db:
                        tables.add(f"{table.db}.{table.name}".lower())
    return SqlTouch(frozenset(tables), writes, count, deletes, "", overwrites, frozenset(pii))


READ_PRAGMAS = frozenset(
    "table_info table_xinfo index_list index_info index_xinfo foreign_key_list table_list database_list "
    "collation_list compile_options function_list module_list pragma_list".split()
)


def _read_pragma(statement, exp) -> bool:
    """`PRAGMA table_info(users)` only describes; `PRAGMA writable_schema = 1` changes the database."""
    target = statement.this
    name = target.name if isinstance(target, (exp.Anonymous, exp.Column, exp.Identifier)) else ""
    return str(name).lower() in READ_PRAGMAS


_STRING = re.compile(r"'(?:[^']|'')*'")


def _without_strings(text: str) -> str:
    """The SQL with standard '…' literals blanked, so `WHERE note = '#1'` is not a # comment.

    A backslash inside a literal is kept visible on purpose: MySQL reads 'a\\' differently."""
    return _STRING.sub(lambda m: "''" if "\\" not in m.group(0) else m.group(0), text)


# ---------------------------------------------------------------------------- NoSQL

_MONGO = re.compile(r"\bdb\s*\.\s*(?:getCollection\(\s*['\"]([^'\"]+)['\"]\s*\)|([A-Za-z_][\w-]*))\s*\.\s*([A-Za-z]+)\s*\(")
_MONGO_DB = re.compile(r"\bdb\s*\.\s*(dropDatabase|runCommand|adminCommand|eval|createUser|grantRolesToUser)\s*\(")
MONGO_DELETES = frozenset("deleteone deletemany remove drop findoneanddelete".split())
MONGO_WRITES = frozenset(
    """insert insertone insertmany update updateone updatemany replaceone findoneandupdate findoneandreplace
    findandmodify bulkwrite createindex dropindex dropindexes renamecollection save""".split()
)
MONGO_READS = frozenset("find findone count countdocuments estimateddocumentcount distinct aggregate getindexes stats".split())
REDIS_DELETES = frozenset("DEL UNLINK FLUSHALL FLUSHDB HDEL LREM SREM ZREM GETDEL EXPIRE PEXPIRE LTRIM XDEL".split())
REDIS_READS = frozenset(
    "GET MGET EXISTS KEYS SCAN TTL PTTL TYPE STRLEN HGET HGETALL HKEYS HVALS HLEN HEXISTS LRANGE LLEN LINDEX SMEMBERS "
    "SISMEMBER SCARD ZRANGE ZSCORE ZCARD XRANGE XLEN PING INFO DBSIZE".split()
)
REDIS_WRITES = frozenset(
    "SET SETEX SETNX PSETEX MSET MSETNX APPEND INCR INCRBY DECR DECRBY HSET HMSET HSETNX HINCRBY LPUSH RPUSH LSET LINSERT "
    "SADD SMOVE ZADD ZINCRBY RENAME RENAMENX COPY RESTORE XADD PUBLISH EVAL EVALSHA CONFIG SCRIPT".split()
)
REDIS_COMMANDS = REDIS_WRITES | REDIS_DELETES | REDIS_READS
DYNAMO_READS = frozenset(
    "getitem get-item query scan batchgetitem batch-get-item describetable describe-table listtables list-tables".split()
)
DYNAMO_DELETES = frozenset("deleteitem delete-item deletetable delete-table batchwriteitem batch-write-item".split())
DYNAMO_WRITES = frozenset(
    "putitem put-item updateitem update-item createtable create-table updatetable update-table "
    "transactwriteitems transact-write-items executestatement execute-statement".split()
)


def mongo_ops(text: str) -> list[tuple[str, str]]:
    """[(write|delete|read|unknown, collection)] for mongo-shell code such as `db.users.deleteMany({})`."""
    found: list[tuple[str, str]] = []
    for match in _MONGO.finditer(text):
        collection = (match.group(1) or match.group(2)).lower()
        op = match.group(3).lower()
        kind = "delete" if op in MONGO_DELETES else "write" if op in MONGO_WRITES else "read" if op in MONGO_READS else "unknown"
        found.append((kind, collection))
    for match in _MONGO_DB.finditer(text):
        found.append(("delete" if match.group(1) == "dropDatabase" else "unknown", "*"))
    return found


def redis_op(words: list[str]) -> str:
    """read | write | delete for one Redis command's words (`SET k v`, `FLUSHALL`)."""
    if not words:
        return "read"
    name = words[0].upper()
    if name in REDIS_DELETES:
        return "delete"
    return "read" if name in REDIS_READS else "write"
