"""Team rules: approvers / quorum / not_self (loading errors, combining, explain) and conditions on
who made the call (agent, machine, owner), which only signoff sets."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import test_policy_errors
from policy_helpers import call
from signoff.model import ApprovalRequirements, Identity, ToolCall, Verdict
from signoff.policy.engine import Policy

ERRORS = [
    (
        "hitl_policies:\n  - tool: '*'\n    quorum: 0\n",
        "p.yaml:3: hitl_policies[0].quorum: Input should be greater than or equal to 1",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    quorum: 11\n",
        "p.yaml:3: hitl_policies[0].quorum: Input should be less than or equal to 10",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    quorum: '2'\n",
        "p.yaml:3: hitl_policies[0].quorum: quorum must be a whole number of people",
    ),
    ("hitl_policies:\n  - tool: '*'\n    quorum: 1.5\n", "p.yaml:3: hitl_policies[0].quorum: quorum must be a whole number"),
    ("hitl_policies:\n  - tool: '*'\n    quorum: true\n", "p.yaml:3: hitl_policies[0].quorum: quorum must be a whole number"),
    (
        "hitl_policies:\n  - tool: '*'\n    not_self: yes please\n",
        "p.yaml:3: hitl_policies[0].not_self: not_self must be true or false",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    approvers: []\n",
        "p.yaml:3: hitl_policies[0].approvers: an empty approvers list lets nobody approve",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    approvers: [finance, 'Bad Role']\n",
        "p.yaml:3: hitl_policies[0].approvers[1]: role 'Bad Role': use lower-case letters",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    approvers: ['signoff:no-one']\n",
        "p.yaml:3: hitl_policies[0].approvers[0]: role 'signoff:no-one'",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    decision: deny\n    quorum: 2\n",
        "p.yaml:2: hitl_policies[0]: approvers, quorum and not_self only apply to held calls; this rule's decision is deny",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    decision: allow\n    not_self: true\n",
        "p.yaml:2: hitl_policies[0]: approvers, quorum and not_self only apply to held calls; this rule's decision is allow",
    ),
    (
        "actions:\n  deploy:\n    fields: {agent: args.agent}\nhitl_policies: []\n",
        "p.yaml:3: actions.deploy.fields: field 'agent' is who made the call, set by signoff",
    ),
    ("predicates:\n  owner: 'true'\nhitl_policies: []\n", "p.yaml:2: predicates.owner: 'owner' is a built-in name"),
    (
        "hitl_policies:\n  - tool: '*'\n    condition: 'agent =='\n",
        "p.yaml:3: hitl_policies[0].condition: invalid CEL expression",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_bad_team_keys_name_file_line_and_field(text: str, expected: str) -> None:
    test_policy_errors.test_error_names_file_line_and_field(text, expected)


def test_a_single_role_may_be_written_without_a_list() -> None:
    policy = Policy.from_text("hitl_policies:\n  - tool: '*'\n    approvers: finance\n    quorum: 2\n")
    assert policy.evaluate(call("a.b")).approval == ApprovalRequirements(2, (("finance",),), False)


COMBINED = """\
hitl_policies:
  - tool: "*"
    annotations: {destructiveHint: true}
  - action: purchase
    condition: amount > 1000
    approvers: [finance, cfo]
    quorum: 2
  - tool: "shop.*"
    approvers: [security]
    not_self: true
  - tool: "shop.checkout"
    condition: amount > 1000000
    quorum: 3
  - tool: "shop.refund"
    decision: deny
    quorum: 1
"""


def test_the_strictest_requirements_of_the_matched_rules_win() -> None:
    policy = Policy.from_text(COMBINED)
    small = policy.evaluate(call("shop.checkout", {"amount": 10}))
    assert small.verdict is Verdict.ASK and small.approval == ApprovalRequirements(1, (("security",),), True)
    big = policy.evaluate(call("shop.checkout", {"amount": 5000}, destructiveHint=True))
    # rule 0 decides (first in the file) but rules 1 and 2 matched too: their roles all apply, max quorum
    assert big.rule == "hitl_policies[0] (*)"
    assert big.approval == ApprovalRequirements(2, (("finance", "cfo"), ("security",)), True)
    assert big.approval.describe() == "2 approvals from (finance or cfo) and security; not the agent's owner"
    huge = policy.evaluate(call("shop.checkout", {"amount": 5_000_000}))
    assert huge.approval.quorum == 3
    assert policy.evaluate(call("shop.refund", {"amount": 5})).verdict is Verdict.DENY
    plain = policy.evaluate(call("fs.delete", destructiveHint=True))
    assert plain.approval == ApprovalRequirements() and plain.approval.default


def test_a_failed_condition_holds_with_the_rules_requirements() -> None:
    policy = Policy.from_text("hitl_policies:\n  - tool: '*'\n    condition: args.x.y > 1\n    quorum: 2\n")
    decision = policy.evaluate(call("a.b", {"x": "not a map"}))
    assert decision.verdict is Verdict.ASK and "could not be evaluated" in decision.reason
    assert decision.approval.quorum == 2


AGENT_RULES = """\
hitl_policies:
  - tool: "*"
    condition: agent == "ci-bot"
    decision: deny
    reason: "ci-bot may not call tools here"
  - tool: "*.deploy"
    condition: machine != "build-01" || owner == ""
"""


def with_identity(c: ToolCall, **who: str) -> ToolCall:
    return ToolCall(c.server, c.tool, c.arguments, c.annotations, identity=Identity(**who))


@pytest.mark.parametrize("arguments", [{}, {"agent": "ci-bot"}, {"agent": "human"}])
def test_conditions_on_agent_read_the_identity_signoff_set_never_the_arguments(arguments: dict) -> None:
    policy = Policy.from_text(AGENT_RULES)
    probe = call("git.status", arguments)
    assert policy.evaluate(probe).verdict is Verdict.ALLOW  # no identity: empty names
    assert policy.evaluate(with_identity(probe, agent="claude-code")).verdict is Verdict.ALLOW
    denied = policy.evaluate(with_identity(probe, agent="ci-bot"))
    assert denied.verdict is Verdict.DENY and denied.reason == "ci-bot may not call tools here"


def test_conditions_on_machine_and_owner() -> None:
    policy = Policy.from_text(AGENT_RULES)
    deploy = call("ops.deploy", {"machine": "build-01", "owner": "ann"})
    assert policy.evaluate(deploy).verdict is Verdict.ASK  # arguments named machine/owner are not the identity
    assert policy.evaluate(with_identity(deploy, machine="build-01", owner="ann")).verdict is Verdict.ALLOW
    assert policy.evaluate(with_identity(deploy, machine="laptop", owner="ann")).verdict is Verdict.ASK
    assert policy.evaluate(with_identity(deploy, machine="build-01")).verdict is Verdict.ASK


def test_args_agent_still_reads_the_argument_when_written_as_args() -> None:
    policy = Policy.from_text("hitl_policies:\n  - tool: '*'\n    condition: args.agent == 'x' && agent == 'y'\n")
    assert policy.evaluate(with_identity(call("a.b", {"agent": "x"}), agent="y")).verdict is Verdict.ASK
    assert policy.evaluate(with_identity(call("a.b", {"agent": "y"}), agent="x")).verdict is Verdict.ALLOW


def test_policy_explain_shows_who_may_approve_and_the_identity(tmp_path) -> None:
    from signoff.cli.main import app

    path = tmp_path / "team.yaml"
    path.write_text(COMBINED + AGENT_RULES.split("hitl_policies:\n", 1)[1])
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "explain",
            str(path),
            "--tool",
            "shop.checkout",
            "--args",
            '{"amount": 5000}',
            "--agent",
            "claude-code",
            "--machine",
            "laptop-ann",
            "--owner",
            "ann",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "decision: ASK" in out
    assert "  approval: 2 approvals from (finance or cfo) and security; not the agent's owner" in out
    assert "  who: agent claude-code on machine laptop-ann, owner ann" in out
    assert "hitl_policies[1] (purchase): MATCH (ask) [2 approvals from finance or cfo] -" in out
    assert "hitl_policies[2] (shop.*): MATCH (ask) [1 approval from security; not the agent's owner] -" in out
    assert "hitl_policies[5] (*): no - condition 'agent == \"ci-bot\"' is false" in out
    denied = CliRunner().invoke(
        app,
        ["policy", "explain", str(path), "--tool", "shop.checkout", "--args", '{"agent": "claude-code"}', "--agent", "ci-bot"],
    )
    assert "decision: DENY" in denied.output and "approval:" not in denied.output


def test_the_team_example_config() -> None:
    from policy_helpers import ROOT
    from signoff.policy.engine import load_policy

    policy = load_policy(str(ROOT / "configs" / "team.yaml"))
    pay = policy.evaluate(call("stripe.create_payment", {"amount": 50}))
    assert pay.verdict is Verdict.ASK and pay.approval == ApprovalRequirements(1, (("finance",),), False)
    big = policy.evaluate(call("stripe.create_payment", {"amount": 50000}))
    assert big.approval == ApprovalRequirements(2, (("finance",),), True)
    bot = with_identity(call("git.git_status"), agent="ci-bot", machine="laptop")
    assert policy.evaluate(bot).verdict is Verdict.DENY
    assert policy.evaluate(with_identity(call("git.git_status"), agent="ci-bot", machine="build-01")).verdict is Verdict.ALLOW


def test_policy_check_summarises_who_approves() -> None:
    from policy_helpers import ROOT
    from signoff.cli.main import app

    result = CliRunner().invoke(app, ["policy", "check", str(ROOT / "configs" / "team.yaml")])
    assert result.exit_code == 0, result.output
    assert (
        "  approvals: 4 rules say who approves (roles finance, oncall, security, sre; highest quorum 2; not_self on 2)"
    ) in result.output
    plain = CliRunner().invoke(app, ["policy", "check", "balanced"])
    assert plain.exit_code == 0 and "approvals:" not in plain.output
