"""The policy engine, key by key, preset by preset; properties; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from signoff.cli import app
from signoff.model import ToolCall, Verdict
from signoff.policy import PRESETS, Policy, load_policy

ROOT = Path(__file__).resolve().parents[1]

SEED = """\
hitl_policies:
  - action: file_delete          # all file deletions require approval
    scope: all
  - action: send_email           # external emails require approval
    condition: recipient_is_external
  - action: api_call             # calls to these domains require approval
    domains: [production.api.company.com, payments.stripe.com, "production.*"]
  - action: purchase             # purchases over $100 require approval
    condition: amount > 100
  - action: database_write
    tables: [users, orders, payments]
"""


def call(qualified: str, args: dict | None = None, **annotations) -> ToolCall:
    server, _, tool = qualified.partition(".")
    return ToolCall(server, tool, args or {}, annotations)


def verdict(policy: Policy, c: ToolCall) -> str:
    return policy.evaluate(c).verdict.value


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
    missing = policy.evaluate(call("shop.buy", {"sku": "1"}))
    assert missing.verdict is Verdict.ASK and "could not be evaluated" in missing.reason
    wrong_type = policy.evaluate(call("bank.pay", {"amount": 5}))
    assert wrong_type.verdict is Verdict.ASK


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_ship_in_configs_and_package_identically(preset: str) -> None:
    shipped = (ROOT / "configs" / f"{preset}.yaml").read_text()
    packaged = (ROOT / "src" / "signoff" / "presets" / f"{preset}.yaml").read_text()
    assert shipped == packaged
    assert load_policy(preset).hash == load_policy(str(ROOT / "configs" / f"{preset}.yaml")).hash


READ_ONLY = {"readOnlyHint": True, "openWorldHint": False}
WRITES = {"readOnlyHint": False, "destructiveHint": False, "openWorldHint": False}
DESTROYS = {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": False}
PRESET_CASES = [
    # tool, args, annotations, conservative, balanced, permissive
    ("git.git_status", {}, READ_ONLY, "allow", "allow", "allow"),
    ("git.git_commit", {"message": "m"}, WRITES, "ask", "allow", "allow"),
    ("filesystem.write_file", {"path": "/a"}, DESTROYS, "ask", "ask", "ask"),
    ("filesystem.delete_file", {"path": "/a"}, {}, "ask", "ask", "ask"),
    ("fetch.fetch", {"url": "https://example.org"}, {"readOnlyHint": True}, "ask", "allow", "allow"),
    ("fetch.fetch", {"url": "https://production.api.x.com"}, {"readOnlyHint": True}, "ask", "ask", "allow"),
    ("gmail.send_email", {"to": "a@b.com"}, {}, "ask", "ask", "allow"),
    ("shop.checkout", {"amount": 20}, {"readOnlyHint": False, "destructiveHint": False}, "ask", "allow", "allow"),
    ("db.query", {"sql": "SELECT 1 FROM users"}, READ_ONLY, "allow", "allow", "allow"),
    ("db.query", {"sql": "DELETE FROM users"}, READ_ONLY, "ask", "ask", "ask"),
    ("shell.run_command", {"cmd": "ls"}, {}, "ask", "ask", "allow"),
]


@pytest.mark.parametrize(("tool", "args", "hints", "conservative", "balanced", "permissive"), PRESET_CASES)
def test_presets_oversight_levels(tool, args, hints, conservative, balanced, permissive) -> None:
    c = call(tool, args, **hints)
    assert verdict(load_policy("conservative"), c) == conservative
    assert verdict(load_policy("balanced"), c) == balanced
    assert verdict(load_policy("permissive"), c) == permissive


@pytest.mark.parametrize("name", ["filesystem", "git", "fetch"])
def test_per_server_examples(name: str) -> None:
    policy = load_policy(str(ROOT / "configs" / f"{name}.yaml"))
    cases = {
        "filesystem": [("filesystem.read_text_file", {"path": "/w/a"}, "allow"), ("filesystem.write_file", {"path": "/w/a"}, "ask"),
                       ("filesystem.write_file", {"path": "/home/u/.ssh/id_rsa"}, "deny"), ("filesystem.move_file", {"source": "a"}, "ask")],
        "git": [("git.git_status", {}, "allow"), ("git.git_commit", {}, "ask"), ("git.git_add", {"files": ["src/a.py"]}, "allow"),
                ("git.git_add", {"files": ["."]}, "ask")],
        "fetch": [("fetch.fetch", {"url": "http://169.254.169.254/latest"}, "deny"), ("fetch.fetch", {"url": "https://wiki.company.com"}, "allow"),
                  ("fetch.fetch", {"url": "https://example.org"}, "ask")],
    }[name]
    for tool, args, expected in cases:
        assert verdict(policy, call(tool, args)) == expected, (tool, args)


# ---------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
    | st.sampled_from(["https://payments.stripe.com/x", "DELETE FROM users", "a@b.com", "SELECT * FROM orders", "DROP ((("]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
TOOLS = st.sampled_from(["fs.delete_file", "gmail.send_email", "fetch.fetch", "shop.checkout", "db.execute_sql", "x.y", "shell.run"])


@settings(max_examples=300, deadline=None)
@given(tool=TOOLS, args=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_random_arguments_never_crash_evaluation(tool: str, args: dict) -> None:
    for policy in (Policy.from_text(SEED, source="seed.yaml"), load_policy("conservative"), load_policy("balanced")):
        decision = policy.evaluate(call(tool, args))
        assert decision.verdict in (Verdict.ALLOW, Verdict.ASK, Verdict.DENY)


DENY_FIRST = Policy.from_text(
    """
hitl_policies:
  - tool: "*"
    decision: allow
  - action: file_delete
  - tool: "*"
    condition: "has(args.danger)"
    decision: deny
""",
    source="p.yaml",
)


@settings(max_examples=200, deadline=None)
@given(tool=TOOLS, args=st.dictionaries(st.text(max_size=10), json_values, max_size=5), danger=json_values)
def test_a_matching_deny_always_wins(tool: str, args: dict, danger) -> None:
    assert DENY_FIRST.evaluate(call(tool, {**args, "danger": danger})).verdict is Verdict.DENY


# ---------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_check_ok_and_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "check", "balanced"])
    assert result.exit_code == 0, result.output
    assert "OK (7 rules" in result.output


def test_cli_check_error_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hitl_policies:\n  - action: file_delete\n    scop: all\n")
    result = runner.invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:3: hitl_policies[0].scop: unknown key 'scop'" in result.output


def test_cli_explain_names_the_rule_and_why_others_did_not_match() -> None:
    result = runner.invoke(
        app, ["policy", "explain", "balanced", "--tool", "gmail.send_email", "--args", json.dumps({"to": "x@y.com"})]
    )
    assert result.exit_code == 0, result.output
    assert "decision: ASK" in result.output
    assert "hitl_policies[1] (send_email): MATCH (ask)" in result.output
    assert "hitl_policies[0] (file_delete): no - gmail.send_email does not look like action file_delete" in result.output


def test_cli_explain_bad_input_exit_2() -> None:
    assert runner.invoke(app, ["policy", "explain", "balanced", "--tool", "nodot"]).exit_code == 2
    assert runner.invoke(app, ["policy", "explain", "balanced", "--tool", "a.b", "--args", "{nope"]).exit_code == 2
