"""The seed's three preset blocks, pasted as a seed author would write them, load and mean what they say.

We do not have the seed's exact text, so each block is written in the forms a seed-style policy
plausibly uses: its vocabulary (database_delete, payment, refund, deploy...), `scope`,
`condition`, `domains`, `tables`, one value where a list is expected, lists of actions,
`action: "*"`, `$` amounts and `1,000` thousands, `is_external`, `description:`.
"""

from __future__ import annotations

import pytest

from policy_helpers import call, verdict
from signoff.policy.engine import Policy

SEED_CONSERVATIVE = """\
# Conservative: approve all external actions
hitl_policies:
  - action: send_email
    scope: all
  - action: send_message
    scope: all
  - action: api_call
    scope: external
  - action: [file_write, file_delete]
    scope: all
  - action: database_write
    scope: all
  - action: purchase
    scope: all
  - action: payment
    scope: all
  - action: shell
    scope: all
"""

SEED_BALANCED = """\
# Balanced: approve high-risk only
hitl_policies:
  - action: send_email
    condition: recipient_is_external
    description: emails leaving the company
  - action: file_delete
    scope: all
  - action: api_call
    domains: "production.*"
  - action: purchase
    condition: amount > $100
  - action: database_write
    tables: [users, orders, payments]
  - action: deploy
    scope: always
"""

SEED_PERMISSIVE = """\
# Permissive: approve only destructive actions
hitl_policies:
  - action: file_delete
    scope: all
  - action: database_delete
    scope: all
  - action: payment
    condition: amount > 1,000
  - action: refund
"""

SEED_STAR = """\
hitl_policies:
  - action: "*"
    scope: external
"""


@pytest.mark.parametrize("text", [SEED_CONSERVATIVE, SEED_BALANCED, SEED_PERMISSIVE, SEED_STAR])
def test_seed_blocks_load_unchanged(text: str) -> None:
    Policy.from_text(text, source="seed.yaml")


CASES = [
    # tool, args, conservative, balanced, permissive
    ("gmail.send_email", {"to": "eve@evil.example"}, "ask", "ask", "allow"),
    ("gmail.send_email", {"to": ["ann@company.com"]}, "ask", "ask", "allow"),  # no internal_domains: external
    ("slack.post_message", {"channel": "#x", "text": "hi"}, "ask", "allow", "allow"),
    ("fetch.fetch", {"url": "https://production.example.com/x"}, "ask", "ask", "allow"),
    ("fetch.fetch", {"url": "https://docs.python.org"}, "ask", "allow", "allow"),
    ("filesystem.write_file", {"path": "/w/a"}, "ask", "allow", "allow"),
    ("filesystem.delete_file", {"path": "/w/a"}, "ask", "ask", "ask"),
    ("postgres.execute_sql", {"sql": "DELETE FROM users"}, "ask", "ask", "ask"),
    ("postgres.execute_sql", {"sql": "INSERT INTO logs VALUES (1)"}, "ask", "allow", "allow"),
    ("postgres.execute_sql", {"sql": "SELECT * FROM users"}, "allow", "allow", "allow"),
    ("shop.checkout", {"amount": 150}, "ask", "ask", "allow"),
    ("shop.checkout", {"amount": 50}, "ask", "allow", "allow"),
    # the balanced block speaks of purchases only; a payment is not a purchase (tests/corpus/README.md)
    ("stripe.create_payment_intent", {"amount": "$1,500.00"}, "ask", "allow", "ask"),
    ("stripe.create_payment_intent", {"amount": "$500"}, "ask", "allow", "allow"),
    ("stripe.create_refund", {"amount": 5}, "ask", "allow", "ask"),
    ("aws.deploy_stack", {"stack": "prod"}, "allow", "ask", "allow"),
    ("shell.run_command", {"command": "rm -rf build/"}, "ask", "ask", "ask"),
    ("shell.run_command", {"command": "git status"}, "allow", "allow", "allow"),
    ("github.list_issues", {"repo": "a/b"}, "allow", "allow", "allow"),
]


@pytest.mark.parametrize(("tool", "args", "conservative", "balanced", "permissive"), CASES)
def test_seed_blocks_mean_what_the_seed_says(tool: str, args: dict, conservative: str, balanced: str, permissive: str) -> None:
    c = call(tool, args)
    assert verdict(Policy.from_text(SEED_CONSERVATIVE, source="c.yaml"), c) == conservative
    assert verdict(Policy.from_text(SEED_BALANCED, source="b.yaml"), c) == balanced
    assert verdict(Policy.from_text(SEED_PERMISSIVE, source="p.yaml"), c) == permissive


def test_action_star_holds_any_action_and_unknown_tools_but_not_reads() -> None:
    policy = Policy.from_text("hitl_policies:\n  - action: '*'\n", source="p.yaml")
    assert verdict(policy, call("x.frobnicate", {})) == "ask"
    assert verdict(policy, call("x.get_thing", {})) == "allow"
    assert verdict(policy, call("gmail.send_email", {"to": "a@b.com"})) == "ask"


def test_unknown_action_names_the_vocabulary() -> None:
    from signoff.errors import PolicyError

    with pytest.raises(PolicyError, match=r"action 'wire_money' has no `actions:` entry.*database_delete.*sensitive_read"):
        Policy.from_text("hitl_policies:\n  - action: wire_money\n", source="p.yaml")
