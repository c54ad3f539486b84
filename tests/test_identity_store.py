"""Identity and approval requirements in the store: the audit hash covers the identity (and older
rows without one still verify), held rows read back what the proxy stored, the gate stamps every
call, and the page's queue says who made a call and who may approve it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import replace

from starlette.testclient import TestClient

from signoff.approvals.audit import FIELDS, AuditLog, entry, row_hash
from signoff.approvals.broker import Broker
from signoff.approvals.gate import ApprovalGate
from signoff.config import IdentityStamp, client_agent_name
from signoff.model import (
    NOBODY,
    ONE_APPROVER,
    ApprovalRequirements,
    Decision,
    Identity,
    ToolCall,
    Verdict,
    canonical_json,
)
from signoff.policy.engine import Policy
from signoff.web.app import UI, create_app
from signoff.web.security import Guard

WHO = Identity("build-01", "ci-bot", "ann")


def test_rows_without_identity_hash_as_before_and_an_edited_identity_breaks_the_chain() -> None:
    row = {name: None for name in FIELDS}
    row.update(id=1, decision="allowed", prev_hash="0" * 64)
    old = hashlib.sha256(canonical_json({name: row.get(name) for name in FIELDS}).encode()).hexdigest()
    assert row_hash(row) == old == row_hash({**row, "identity": None})
    assert row_hash({**row, "identity": '{"agent":"x"}'}) != old

    broker = Broker()
    log = AuditLog(broker.store)
    log.append(ToolCall("a", "b", identity=WHO), "allowed")
    log.append(ToolCall("a", "c"), "allowed")  # no identity: the column stays NULL
    rows = list(broker.store.audit_rows())
    assert json.loads(rows[0]["identity"]) == WHO.as_dict() and rows[1]["identity"] is None
    assert log.verify() == (2, None)
    broker.store.close()
    with sqlite3.connect(broker.store.path) as conn:
        conn.execute("UPDATE audit SET identity = ? WHERE id = 1", (canonical_json({**WHO.as_dict(), "agent": "human"}),))
    _, problem = AuditLog(Broker().store).verify()
    assert problem is not None and problem.row == 1 and "was changed" in str(problem)


def test_entry_takes_the_calls_identity_unless_given_one() -> None:
    assert json.loads(entry(ToolCall("a", "b", identity=WHO))["identity"])["agent"] == "ci-bot"
    other = Identity("m", "other", "")
    assert json.loads(entry(ToolCall("a", "b", identity=WHO), identity=other)["identity"])["agent"] == "other"
    assert entry(ToolCall("a", "b"))["identity"] is None


def test_held_rows_read_back_identity_and_requirements_and_fail_closed_when_unreadable() -> None:
    broker = Broker()
    needs = ApprovalRequirements(2, (("finance",),), True)
    held_id = broker.issue_retry(
        ToolCall("shop", "pay", {"amount": 5}, identity=WHO), Decision(Verdict.ASK, "pays", "r", 60, approval=needs), "hash"
    )
    held = broker.get(held_id)
    assert held.identity == WHO and held.requirements == needs
    assert held.who == "agent ci-bot on build-01 (owner ann)"
    assert held.as_dict()["approval"] == needs.as_dict() and held.as_dict()["agent"] == "ci-bot"
    unknown = replace(held, presentation=None)  # a row held before identities were kept
    assert unknown.identity is None and unknown.requirements == ONE_APPROVER and unknown.who == ""
    broken = replace(held, presentation={"team": {"approval": {"quorum": "2"}}})
    assert broken.requirements == NOBODY
    denied = broker.decide(held_id, False, by="bob")
    last = list(broker.store.audit_rows())[-1]
    assert denied.status == "denied" and json.loads(last["identity"]) == WHO.as_dict()


def test_the_gate_stamps_every_call_from_its_settings_only() -> None:
    policy = Policy.from_text("hitl_policies:\n  - tool: '*'\n    condition: agent == 'ci-bot'\n    decision: deny\n")

    class Holder:
        def get(self) -> Policy:
            return policy

    broker = Broker()
    configured = ApprovalGate(Holder(), broker, identity=IdentityStamp({"machine": "m1", "agent": "ci-bot", "owner": None}))
    spoofed = ToolCall("a", "b", {"agent": "human"}, client="claude-code")
    assert not configured.check(spoofed).allowed
    default = ApprovalGate(Holder(), broker, identity=IdentityStamp({}))
    assert not default.check(ToolCall("a", "b", client="ci-bot")).allowed  # unset: the client's own name
    assert default.check(ToolCall("a", "b", client="claude-code")).allowed
    agents = [json.loads(r["identity"])["agent"] for r in broker.store.audit_rows()]
    assert agents == ["ci-bot", "ci-bot", "claude-code"]


def test_client_names_are_cleaned_and_cut() -> None:
    assert client_agent_name("ci-bot\u202e\n") == "ci-bot"
    assert client_agent_name("x" * 500).endswith("…") and len(client_agent_name("x" * 500)) == 64
    assert client_agent_name("   ") == "unnamed client"
    stamp = IdentityStamp({})
    assert stamp(ToolCall("a", "b", identity=WHO)).identity is WHO  # never re-stamped
    for n in range(300):  # the per-client cache stays bounded whatever names clients send
        stamp(ToolCall("a", "b", client=f"c{n}"))
    assert len(stamp._by_client) <= 257


def test_the_page_queue_says_who_and_what_approval_is_needed() -> None:
    broker = Broker()
    broker.issue_retry(
        ToolCall("shop", "pay", {"amount": 5}, identity=WHO),
        Decision(Verdict.ASK, "pays", "r", 60, approval=ApprovalRequirements(2)),
        "hash",
    )
    client = TestClient(
        create_app(UI(broker, Guard("tok", "127.0.0.1", 8765))), base_url="http://127.0.0.1:8765", follow_redirects=False
    )
    client.get("/?token=tok")
    [item] = client.get("/api/queue").json()["pending"]
    assert item["who"] == "agent ci-bot on build-01 (owner ann)"
    assert item["needs"] == "2 approvals from any approver"
    assert item["machine"] == "build-01" and item["approval"]["quorum"] == 2


def test_one_persons_approval_cannot_decide_a_call_that_needs_more() -> None:
    import pytest

    from signoff.errors import DecisionError

    broker = Broker()
    plain = broker.issue_retry(ToolCall("shop", "pay", {"n": 1}), Decision(Verdict.ASK, "pays", "r", 60), "hash")
    assert broker.decide(plain, True, by="ann").status == "approved"
    for needs in (ApprovalRequirements(2), ApprovalRequirements(1, (("finance",),)), ApprovalRequirements(1, (), True)):
        held_id = broker.issue_retry(
            ToolCall("shop", "pay", {"n": repr(needs)}, identity=WHO),
            Decision(Verdict.ASK, "pays", "r", 60, approval=needs),
            "hash",
        )
        with pytest.raises(DecisionError, match=f"{held_id} needs {needs.describe()}: one person's approval cannot"):
            broker.decide(held_id, True, by="ann", remember="tool")
        assert broker.get(held_id).status == "pending"
        assert broker.decide(held_id, False, by="ann").status == "denied"
        with pytest.raises(DecisionError, match="was already denied by ann"):  # the usual answer once decided
            broker.decide(held_id, True, by="bob")


def test_a_remembered_approval_does_not_stand_in_for_a_quorum() -> None:
    policy = Policy.from_text(
        "hitl_policies:\n  - tool: 'shop.pay'\n  - tool: 'shop.pay'\n    condition: amount > 100\n    quorum: 2\n"
    )

    class Holder:
        def get(self) -> Policy:
            return policy

    broker = Broker()
    gate = ApprovalGate(Holder(), broker)
    first = broker.issue_retry(
        ToolCall("shop", "pay", {"amount": 5}), policy.evaluate(ToolCall("shop", "pay", {"amount": 5})), "h"
    )
    broker.decide(first, True, by="ann", remember="tool")
    assert gate.check(ToolCall("shop", "pay", {"amount": 5})).allowed  # remembered: one approver was enough
    big = gate.check(ToolCall("shop", "pay", {"amount": 500}))
    assert not big.allowed and big.hold and big.decision.approval.quorum == 2


def test_terminals_show_who_made_the_call_and_what_approval_it_needs() -> None:
    from signoff.approvers.console import render_held

    broker = Broker()
    spoof = Identity("build-01", "ci\u202ebot\x1b[2J", "ann")  # a client-chosen name reaches terminals escaped
    held_id = broker.issue_retry(
        ToolCall("shop", "pay", {"amount": 5}, identity=spoof),
        Decision(Verdict.ASK, "pays", "r", 60, approval=ApprovalRequirements(2, (("finance",),))),
        "hash",
    )
    text = render_held(broker.get(held_id))
    assert "   from: agent ci\\u202ebot\\x1b[2J on build-01 (owner ann)" in text
    assert "   needs: 2 approvals from finance\n" in text
    assert "\u202e" not in text and "\x1b" not in text
