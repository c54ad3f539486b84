"""The policy engine key by key: the seed form, every extended key, evaluation order, CEL, SQL, built-in actions."""

from __future__ import annotations

import pytest

from policy_helpers import SEED, call, verdict
from signoff.errors import PolicyError
from signoff.model import Verdict
from signoff.policy.engine import Policy

SEED_CASES = [
    ("filesystem.delete_file", {"path": "/tmp/x"}, "ask"),
    ("fs.remove_directory", {"path": "/tmp"}, "ask"),
    ("filesystem.read_file", {"path": "/tmp/x"}, "allow"),
    ("gmail.send_email", {"to": "bob@elsewhere.org"}, "ask"),
    ("mail.send_message", {"to": "x"}, "ask"),  # no recipient found: counts as external
    ("fetch.fetch", {"url": "https://payments.stripe.com/v1/charges"}, "ask"),
    ("fetch.fetch", {"url": "https://production.eu.company.com/api"}, "ask"),
    ("fetch.fetch", {"url": "https://docs.python.org"}, "allow"),
    ("http.post_request", {"endpoint": "production.api.company.com"}, "ask"),  # bare host under a host-like key
    ("shop.checkout", {"amount": 150.5}, "ask"),
    ("shop.checkout", {"amount": 99}, "allow"),
    ("shop.checkout", {"total": 1000}, "ask"),  # amount unreadable: fail closed
    ("db.execute_sql", {"sql": "DELETE FROM users WHERE id = 1"}, "ask"),
    ("db.execute_sql", {"sql": "UPDATE public.orders SET x = 1"}, "ask"),
    ("db.execute_sql", {"sql": "SELECT * FROM users"}, "allow"),  # reads are not writes
    ("db.execute_sql", {"sql": "INSERT INTO audit_log VALUES (1)"}, "allow"),
    ("db.execute_sql", {"sql": "DROP TABL users ((("}, "ask"),  # unparseable: every table
    ("time.get_current_time", {"timezone": "UTC"}, "allow"),
]


@pytest.mark.parametrize(("tool", "args", "expected"), SEED_CASES)
def test_seed_policy_loads_unchanged_and_decides(tool: str, args: dict, expected: str) -> None:
    policy = Policy.from_text(SEED, source="seed.yaml")
    assert verdict(policy, call(tool, args)) == expected


def test_internal_domains_and_scopes() -> None:
    policy = Policy.from_text(
        """
internal_domains: [company.com]
hitl_policies:
  - action: send_email
    scope: external
  - tool: "chat.post"
    scope: internal
    decision: deny
""",
        source="p.yaml",
    )
    assert verdict(policy, call("gmail.send_email", {"to": "ann@company.com"})) == "allow"
    assert verdict(policy, call("gmail.send_email", {"to": "ann@eu.company.com"})) == "allow"
    assert verdict(policy, call("gmail.send_email", {"to": ["ann@company.com", "x@evil.com"]})) == "ask"
    assert verdict(policy, call("gmail.send_email", {"to": "ann@notcompany.com"})) == "ask"
    assert verdict(policy, call("chat.post", {"url": "https://wiki.company.com/x"})) == "deny"
    assert verdict(policy, call("chat.post", {"text": "no address"})) == "allow"


def test_actions_fields_predicates_and_per_rule_settings() -> None:
    policy = Policy.from_text(
        """
version: 1
internal_domains: [company.com]
defaults: {decision: allow, timeout: 2m, on_timeout: deny}
actions:
  send_email:
    tools: ["gmail.send_*", "*.send_email"]
    fields: {recipient: args.to, subject: args.subject}
  purchase:
    tools: ["shop.checkout"]
    fields: {amount: args.total, currency: args.currency}
predicates:
  big_refund: "amount > 500 && currency == 'USD'"
hitl_policies:
  - action: send_email
    condition: recipient_is_external && subject.contains('invoice')
    timeout: 30s
    hold: retry
    channels: [web, cli]
  - action: purchase
    condition: big_refund
    reason: "large USD purchase"
  - tool: "git.git_commit"
  - tool: "*"
    annotations: {destructiveHint: true}
  - tool: "shell.*"
    decision: deny
    reason: "no shell access from agents"
""",
        source="p.yaml",
    )
    invoice = policy.evaluate(call("gmail.send_draft", {"to": "x@other.com", "subject": "your invoice"}))
    assert invoice.verdict is Verdict.ASK and invoice.timeout == 30 and invoice.hold == "retry"
    assert invoice.channels == ("web", "cli") and invoice.rule == "hitl_policies[0] (send_email)"
    safe = {"destructiveHint": False}  # else the `annotations: {destructiveHint: true}` rule holds them
    assert verdict(policy, call("gmail.send_draft", {"to": "x@other.com", "subject": "lunch"}, **safe)) == "allow"
    big = policy.evaluate(call("shop.checkout", {"total": 900, "currency": "USD"}))
    assert big.verdict is Verdict.ASK and big.reason == "large USD purchase" and big.timeout == 120
    assert verdict(policy, call("shop.checkout", {"total": 900, "currency": "EUR"}, **safe)) == "allow"
    assert verdict(policy, call("git.git_commit", {"message": "x"})) == "ask"
    assert verdict(policy, call("any.thing", {}, destructiveHint=True)) == "ask"
    assert verdict(policy, call("any.thing", {}, readOnlyHint=True)) == "allow"  # read-only destroys nothing
    assert verdict(policy, call("any.thing", {})) == "ask"  # absent hints mean "may destroy"
    denied = policy.evaluate(call("shell.run", {}, readOnlyHint=True))
    assert denied.verdict is Verdict.DENY and denied.reason == "no shell access from agents"


def test_deny_beats_ask_beats_allow_and_first_equal_rule_wins() -> None:
    policy = Policy.from_text(
        """
hitl_policies:
  - tool: "fs.*"
    decision: allow
  - tool: "fs.write_file"
    reason: first ask
  - tool: "fs.write_*"
    reason: second ask
  - tool: "fs.write_file"
    condition: "args.path.startsWith('/etc')"
    decision: deny
    reason: never /etc
""",
        source="p.yaml",
    )
    assert policy.evaluate(call("fs.write_file", {"path": "/home/x"})).reason == "first ask"
    assert policy.evaluate(call("fs.write_file", {"path": "/etc/passwd"})).verdict is Verdict.DENY
    assert verdict(policy, call("fs.read_file", {"path": "/etc/passwd"})) == "allow"


def test_default_decision_applies_to_unmatched_calls() -> None:
    policy = Policy.from_text("defaults: {decision: deny}\nhitl_policies: []\n", source="p.yaml")
    decision = policy.evaluate(call("x.y"))
    assert decision.verdict is Verdict.DENY and decision.rule is None


def test_cel_errors_fail_closed() -> None:
    policy = Policy.from_text(
        """
hitl_policies:
  - tool: "shop.*"
    condition: amount > 100
    decision: allow
  - tool: "bank.*"
    condition: "'x' + amount"
""",
        source="p.yaml",
    )
    missing = policy.evaluate(call("shop.buy", {"sku": "1"}))  # no amount at all: counts as over every limit
    assert missing.verdict is Verdict.ASK and "amount that could not be read" in missing.reason
    wrong_type = policy.evaluate(call("bank.pay", {"amount": 5}))
    assert wrong_type.verdict is Verdict.ASK


@pytest.mark.parametrize(
    ("condition", "args", "error"),
    [
        ("args.amount > 100", {}, "KeyError"),  # the most common case: a key the call did not send
        ("args.items[3] == 'x'", {"items": []}, "IndexError"),
        ("args.total / args.count > 10", {"total": 5, "count": 0}, "ZeroDivisionError"),
        ("args.n + 1 > 0", {"n": 2**63 - 1}, "OverflowError"),
        ("int(args.n) > 3", {"n": "three"}, "RuntimeError"),
        ("args.name.matches('[')", {"name": "x"}, "RuntimeError"),
        ("args.amount > 100", {"amount": "lots"}, "TypeError"),
        ("args.note == 'a'", {"note": "\ud800"}, "ValueError"),  # a lone surrogate, as json.loads can produce
    ],
)
def test_every_cel_evaluation_error_holds_the_call(condition: str, args: dict, error: str) -> None:
    policy = Policy.from_text(
        f"hitl_policies:\n  - tool: 'shop.*'\n    condition: {condition!r}\n    decision: allow\n", source="p.yaml"
    )
    decision = policy.evaluate(call("shop.buy", args))
    assert decision.verdict is Verdict.ASK, decision
    assert f"could not be evaluated ({error}" in decision.reason and "fail closed" in decision.reason


def test_a_failing_condition_on_a_deny_rule_denies() -> None:
    policy = Policy.from_text("hitl_policies:\n  - tool: '*'\n    condition: args.x > 1\n    decision: deny\n", source="p.yaml")
    assert verdict(policy, call("a.b", {})) == "deny"


TABLES = "hitl_policies:\n  - action: database_write\n    tables: [users]\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"sql": "SELECT * FROM users"}, "allow"),  # reads are not writes
        ({"sql": "SELECT 1 UNION SELECT 2"}, "allow"),
        ({"sql": "DELETE FROM Users"}, "ask"),  # table names are case-insensitive
        ({"sql": "UPDATE public.users SET a = 1"}, "ask"),
        ({"sql": "INSERT INTO orders VALUES (1)"}, "allow"),  # a write, to another table
        ({"sql": "COPY users FROM '/tmp/dump.csv'"}, "ask"),  # not a classic DML statement, still a write
        ({"sql": "GRANT ALL ON users TO mallory"}, "ask"),
        ({"sql": "SELECT * INTO users FROM staging"}, "ask"),  # SELECT … INTO creates a table
        ({"sql": "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d"}, "ask"),  # a write inside a CTE
        ({"sql": "BEGIN; DELETE FROM users; COMMIT"}, "ask"),
        ({"q": "SET search_path = x; DELETE FROM users"}, "ask"),  # a statement after ';' is found anywhere
        ({"sql": "EXEC purge_everything"}, "ask"),  # not understood: every table (fail closed)
        ({"statement": "PRAGMA writable_schema = 1"}, "ask"),
        ({"sql": "select " + "(" * 3000 + "1" + ")" * 3000}, "ask"),  # too deep for the parser: every table
        ({"batch": [{"sql": "SELECT 1"}, {"sql": "DROP TABLE users"}]}, "ask"),  # nested arguments are searched
        ({"path": "/tmp/users.csv"}, "ask"),  # a database write naming no table may touch any: fail closed
        ({"table": "Users", "row": {"id": 1}}, "ask"),  # no SQL, but a table argument
        ({"collection": "logs", "doc": {"id": 1}}, "allow"),
    ],
)
def test_tables_and_database_writes(args: dict, expected: str) -> None:
    policy = Policy.from_text(TABLES, source="p.yaml")
    assert verdict(policy, call("db.execute_sql", args)) == expected


def test_tables_without_sql_do_not_match_and_say_so() -> None:
    policy = Policy.from_text("hitl_policies:\n  - tool: '*'\n    tables: [users]\n", source="p.yaml")
    assert verdict(policy, call("notes.save", {"text": "users are happy"})) == "allow"
    _, results = policy.explain(call("notes.save", {"text": "users are happy"}))
    assert results[0].why == "no SQL statement or table name in the arguments"


@pytest.mark.parametrize(
    ("action", "tool", "args", "matched"),
    [
        ("file_delete", "box.rm", {"path": "/a"}, True),  # a verb that needs no object
        ("file_delete", "box.unlink", {"path": "/a"}, True),
        ("file_delete", "filesystem.delete_directory", {}, True),
        ("file_delete", "filesystem.list_deleted_files", {}, False),
        ("purchase", "shop.checkout", {}, True),
        ("purchase", "shop.buy_item", {}, True),
        ("purchase", "shop.get_order", {}, False),  # looking at an order is not buying
        ("purchase", "bank.list_payments", {}, False),
        ("send_email", "gmail.send", {}, True),
        ("send_email", "gmail.search_messages", {}, False),
        ("api_call", "fetch.fetch", {}, True),
        ("api_call", "browser.open", {"target": "https://example.org/a"}, True),  # any tool with a URL argument
        ("api_call", "browser.open", {"target": "see https://example.org/a"}, False),  # text mentioning a URL is not one
        ("api_call", "notes.save", {"text": "hello"}, False),
        ("database_write", "sqlite.write_query", {"query": "INSERT INTO t VALUES (1)"}, True),
        ("database_write", "sqlite.read_query", {"query": "SELECT 1"}, False),
    ],
)
def test_builtin_actions_by_name_and_arguments(action: str, tool: str, args: dict, matched: bool) -> None:
    policy = Policy.from_text(f"hitl_policies:\n  - action: {action}\n", source="p.yaml")
    decision, results = policy.explain(call(tool, args, readOnlyHint=False, destructiveHint=False))
    assert (decision.verdict is Verdict.ASK) is matched, results[0].why
    assert results[0].matched is matched
    if matched:  # explain says why the tool counts as the action
        assert action in results[0].why


def test_destructive_annotation_counts_as_file_delete() -> None:
    policy = Policy.from_text("hitl_policies:\n  - action: file_delete\n", source="p.yaml")
    reason = policy.evaluate(call("filesystem.purge_cache_dir", {}, destructiveHint=True)).reason
    assert reason == "deletes files"  # a person's words, not the matcher's (issue #11, item 4)
    assert policy.evaluate(call("filesystem.purge_cache_dir", {}, destructiveHint=True)).actions == ("file_delete",)
    assert verdict(policy, call("filesystem.tidy_dir", {}, destructiveHint=True)) == "ask"
    assert verdict(policy, call("filesystem.tidy_dir", {}, destructiveHint=False)) == "allow"


def test_on_timeout_allow_is_refused_for_destructive_rules_and_tools() -> None:
    with pytest.raises(
        PolicyError, match=r"^p\.yaml:4: hitl_policies\[0\]\.on_timeout: on_timeout: allow is refused for tools annotated"
    ):
        Policy.from_text(
            "hitl_policies:\n  - tool: '*'\n    annotations: {destructiveHint: true}\n    on_timeout: allow\n", source="p.yaml"
        )
    policy = Policy.from_text("defaults: {on_timeout: allow}\nhitl_policies:\n  - tool: 'git.*'\n", source="p.yaml")
    assert policy.evaluate(call("git.git_commit", {})).on_timeout == "allow"
    assert policy.evaluate(call("git.git_reset", {}, destructiveHint=True)).on_timeout == "deny"


def test_tool_globs_question_mark_and_bare_names() -> None:
    policy = Policy.from_text("hitl_policies:\n  - tool: 'git.git_?dd'\n  - tool: 'fetch'\n", source="p.yaml")
    assert verdict(policy, call("git.git_add", {})) == "ask"
    assert verdict(policy, call("git.git_commit", {})) == "allow"
    assert verdict(policy, call("web.fetch", {})) == "ask"  # a pattern without a dot also matches the bare tool name


def test_hash_is_canonical_and_changes_with_the_rules() -> None:
    a = Policy.from_text("hitl_policies:\n  - tool: 'a.*'   # comment\n", source="a.yaml")
    b = Policy.from_text("hitl_policies: [{tool: 'a.*'}]\n", source="b.yaml")
    c = Policy.from_text("hitl_policies: [{tool: 'b.*'}]\n", source="b.yaml")
    assert a.hash == b.hash != c.hash and len(a.hash) == 64


def test_evaluation_is_deterministic_and_does_not_mutate_the_call() -> None:
    policy = Policy.from_text(SEED, source="seed.yaml")
    args = {"to": ["a@b.com"], "nested": {"url": "https://payments.stripe.com"}}
    c = call("gmail.send_email", args)
    first = policy.evaluate(c)
    assert all(policy.evaluate(c) == first for _ in range(3))
    assert args == {"to": ["a@b.com"], "nested": {"url": "https://payments.stripe.com"}}


@pytest.mark.parametrize(
    ("tool", "args", "hints"),
    [
        ("tasks.execute", {"command": "rm -rf /"}, {}),  # a command argument is read whatever the tool's name
        ("jobs.submit", {"cmd": ["rm", "-rf", "/"]}, {}),  # argv lists too
        ("x.run", {"sql": "DROP TABLE users"}, {}),  # an sql argument is read whatever the tool's name
        ("x.delete_everything", {}, {"readOnlyHint": True}),  # a destructive name beats a read-only claim
    ],
)
def test_arguments_and_names_beat_what_an_unknown_tool_claims(tool: str, args: dict, hints: dict) -> None:
    permissive = Policy.from_text(
        "hitl_policies:\n  - action: [file_delete, database_delete]\n  - action: '*'\n    condition: destructive\n",
        source="p.yaml",
    )
    conservative = Policy.from_text("hitl_policies:\n  - action: '*'\n", source="p.yaml")
    assert verdict(conservative, call(tool, args, **hints)) == "ask"
    if "delete_everything" not in tool:
        assert verdict(permissive, call(tool, args, **hints)) == "ask"


@pytest.mark.parametrize(
    ("tool", "actions"),
    [  # the name-word misfires issue #11 names, and a few that would open the gate
        ("git.git_checkout", ("file_write",)),  # not a purchase: read as `git checkout`, which writes the working tree
        ("github.pull_request_read", ()),  # not an API call
        ("notion.API-post-search", ()),  # not a message
        ("x.update_status", ("unknown",)),  # a read word does not make a write a read
        ("x.get_or_create_user", ("access_change",)),
        ("fs.write_file", ("file_write",)),  # not a deletion
        ("fs.move_file", ("file_write",)),
        ("mail.create_draft", ()),  # drafts send nothing
    ],
)
def test_tool_names_read_without_misfires(tool: str, actions: tuple[str, ...]) -> None:
    policy = Policy.from_text("catalog: off\nhitl_policies: []\n", source="p.yaml")
    assert policy.evaluate(call(tool, {})).actions == actions


def test_a_navigation_that_also_writes_is_not_a_read() -> None:
    conservative = Policy.from_text("catalog: off\nhitl_policies:\n  - action: '*'\n", source="p.yaml")
    assert verdict(conservative, call("web.open_page", {"url": "https://docs.python.org"})) == "allow"
    assert verdict(conservative, call("web.open_and_submit_form", {"url": "https://docs.python.org"})) == "ask"
