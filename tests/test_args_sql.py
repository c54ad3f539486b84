"""SQL that databases read differently from sqlglot counts as a write to every table."""

from __future__ import annotations

import pytest

from policy_helpers import call, verdict
from signoff.policy.engine import Policy
from signoff.policy.understand.sql import ALL_TABLES, analyze, mongo_ops, redis_op


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 /* outer /* inner */ DELETE FROM users; -- */",  # nested comments (PostgreSQL nests)
        "SELECT /*! 1; DELETE FROM users */ 1",  # MySQL executable comment
        "SELECT 1 # ; DELETE FROM users",  # '#' is a comment in MySQL only
        "SELECT 1 --x\nDELETE FROM users",
        "SELECT $$; DELETE FROM users; $$",  # dollar quoting
        "SELECT 'a\\'; DELETE FROM users; --'",  # backslash escapes differ
        "SELECT dblink_exec('conn', 'DROP TABLE users')",  # functions not known read-only
        "SELECT pg_terminate_backend(42)",
        "SELECT lo_export(1, '/tmp/x')",
        "PRAGMA writable_schema = 1",
        "DROP TABL users (((",
    ],
)
def test_disagreements_and_unknown_functions_touch_every_table(sql: str) -> None:
    touch = analyze([sql])
    assert touch.tables == ALL_TABLES and touch.writes and touch.deletes and touch.why


@pytest.mark.parametrize(
    ("sql", "tables", "writes", "deletes"),
    [
        ("SELECT * FROM users WHERE note = '#1'", {"users"}, False, False),  # '#' inside a string is fine
        ("SELECT count(*), lower(name) FROM users", {"users"}, False, False),
        ("SELECT 1; DELETE FROM users", {"users"}, True, True),  # multiple statements
        ("INSERT INTO orders VALUES (1)", {"orders"}, True, False),
        ("WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", {"users", "d"}, True, True),
        ("TRUNCATE payments", {"payments"}, True, True),
    ],
)
def test_readable_sql(sql: str, tables: set[str], writes: bool, deletes: bool) -> None:
    touch = analyze([sql])
    assert touch.tables >= tables and touch.writes is writes and touch.deletes is deletes


def test_nosql_operations() -> None:
    assert mongo_ops("db.users.deleteMany({})") == [("delete", "users")]
    assert mongo_ops('db.getCollection("orders").updateOne({}, {})') == [("write", "orders")]
    assert mongo_ops("db.logs.find({})") == [("read", "logs")]
    assert mongo_ops("db.dropDatabase()") == [("delete", "*")]
    assert redis_op(["FLUSHALL"]) == "delete" and redis_op(["SET", "k", "v"]) == "write" and redis_op(["GET", "k"]) == "read"


PERMISSIVE = Policy.from_text(
    "hitl_policies:\n  - action: database_delete\n  - action: database_write\n    tables: [users]\n", source="p.yaml"
)


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("postgres.query", {"sql": "SELECT * FROM users"}, "allow"),
        ("postgres.query", {"sql": "SELECT 1 /* a /* b */ DELETE FROM users */"}, "ask"),
        ("postgres.query", {"sql": "SELECT dblink_exec('c', 'DELETE FROM users')"}, "ask"),
        ("mongodb.delete-many", {"collection": "logs", "filter": {}}, "ask"),
        ("mongodb.insert-many", {"collection": "logs", "documents": []}, "allow"),
        ("mongodb.insert-many", {"collection": "users", "documents": []}, "ask"),
        ("redis.flushall", {}, "ask"),
    ],
)
def test_database_rules(tool: str, args: dict, expected: str) -> None:
    assert verdict(PERMISSIVE, call(tool, args)) == expected


def test_huge_sql_is_not_parsed_but_touches_every_table() -> None:
    import time

    start = time.perf_counter()
    touch = analyze(["SELECT 1 FROM t WHERE a IN (" + ",".join(["1"] * 200_000) + ")"])
    assert time.perf_counter() - start < 0.5
    assert touch.tables == ALL_TABLES and touch.writes


@pytest.mark.parametrize(
    ("sql", "writes", "destructive"),
    [
        ("PRAGMA table_info(users)", False, False),  # describes
        ("PRAGMA writable_schema = 1", True, True),  # changes the database: unreadable, every table
        ("ALTER TABLE users ADD COLUMN nickname text", True, False),  # additive DDL
        ("ALTER TABLE users DROP COLUMN email", True, True),
        ("ALTER TABLE users RENAME TO old_users", True, True),
        ("UPDATE users SET role = 'admin'", True, True),  # overwrites existing rows
        ("INSERT INTO notes VALUES (1)", True, False),
    ],
)
def test_what_overwrites_or_deletes(sql: str, writes: bool, destructive: bool) -> None:
    touch = analyze([sql])
    assert touch.writes is writes and (touch.deletes or touch.overwrites) is destructive


def test_an_aggregation_that_writes_is_a_database_write() -> None:
    policy = Policy.from_text("catalog: off\nhitl_policies:\n  - action: database_write\n", source="p.yaml")
    stages = {"collection": "orders", "pipeline": [{"$match": {"status": "paid"}}, {"$out": "orders_archive"}]}
    assert verdict(policy, call("mongodb.aggregate", stages)) == "ask"
    assert verdict(policy, call("mongodb.aggregate", {"collection": "orders", "pipeline": [{"$match": {}}]})) == "allow"


@pytest.mark.parametrize(
    ("tool", "args", "write", "delete"),
    [
        ("dynamodb.execute", {"operation": "DeleteItem", "TableName": "orders", "Key": {"id": {"S": "1"}}}, True, True),
        ("dynamodb.execute", {"operation": "PutItem", "TableName": "orders", "Item": {}}, True, False),
        ("dynamodb.execute", {"operation": "GetItem", "TableName": "orders"}, False, False),
        ("redis.run", {"command": "FLUSHALL"}, True, True),
        ("redis.run", {"command": "SET session:1 x"}, True, False),
        ("redis.run", {"command": "GET session:1"}, False, False),
    ],
)
def test_nosql_operations_in_unknown_database_tools(tool: str, args: dict, write: bool, delete: bool) -> None:
    policy = Policy.from_text("catalog: off\nhitl_policies: []\n", source="p.yaml")
    actions = set(policy.evaluate(call(tool, args)).actions)
    assert ("database_write" in actions) is write and ("database_delete" in actions) is delete
