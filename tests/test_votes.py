"""Team mode's votes in the store: the two-person rule decided inside one transaction per vote.

Two different people reach a quorum of two; the same person twice (any spelling, any token)
counts once; an eligible deny denies; ineligible voters (role, not_self) change nothing but are
audited; concurrent votes from separate connections resolve a call exactly once; a vote never
counts for another call. Store-level on every backend (`store_url`), broker-level through `decide`.
"""

from __future__ import annotations

import json
import threading

import pytest

from signoff.approvals.audit import AuditLog
from signoff.approvals.broker import Broker
from signoff.approvals.store import open_store
from signoff.approvals.votes import Ballot
from signoff.errors import AlreadyDecidedError, DecisionError, VoteRefusedError
from signoff.model import ApprovalRequirements, Decision, Identity, ToolCall, Verdict

TWO = ApprovalRequirements(2)
FINANCE_TWO = ApprovalRequirements(2, (("finance",),), True)
WHO = Identity("laptop-ann", "claude-code", "ann")
APPROVER = ("approver",)


def hold(broker: Broker, needs: ApprovalRequirements, n: object = 1, *, tool: str = "pay") -> str:
    call = ToolCall("shop", tool, {"n": n}, identity=WHO)
    return broker.issue_retry(call, Decision(Verdict.ASK, "pays", "r", 60, approval=needs), "hash")


def ballot(person: str, approve: bool = True, roles: tuple[str, ...] = APPROVER, reason: str | None = None) -> Ballot:
    return Ballot.of(person, roles, approve, channel="web", reason=reason)


def audit(store, held_id: str) -> list[dict]:
    return [r for r in store.audit_rows() if r["held_id"] == held_id]


def test_quorum_two_is_reached_by_two_people_and_the_decision_names_both(store_url) -> None:
    store = open_store()
    held_id = hold(Broker(store), TWO)
    first = store.vote(held_id, ballot("alice", reason="looks right"))
    assert first.status == "pending" and first.progress == "approved by alice (1 of 2)"
    assert first.as_dict()["progress"] == {
        "text": "approved by alice (1 of 2)",
        "approved_by": ["alice"],
        "needed": 1,
        "denied_by": None,
    }
    done = store.vote(held_id, ballot("bob"))
    assert done.status == "approved" and done.decided_by == "user:alice, user:bob"
    assert done.progress == "approved by alice, bob (2 of 2)" and done.decision_reason == done.progress
    rows = audit(store, held_id)
    assert [(r["decision"], r["decided_by"]) for r in rows] == [
        ("held", rows[0]["decided_by"]),
        ("approval_vote", "user:alice"),
        ("approval_vote", "user:bob"),
        ("approved", "user:alice, user:bob"),
    ]
    assert rows[1]["reason"] == "approve: looks right; approved by alice (1 of 2)" and rows[1]["channel"] == "web"
    assert json.loads(rows[1]["identity"])["owner"] == "ann"
    assert AuditLog(store).verify() == (4, None)
    with pytest.raises(AlreadyDecidedError, match=f"{held_id} was already approved by user:alice, user:bob"):
        store.vote(held_id, ballot("carol"))  # the usual already-decided answer
    assert len(audit(store, held_id)) == 4  # and nothing written


@pytest.mark.parametrize("again", ["alice", "Alice", " ALICE "])
def test_the_same_person_twice_is_refused_and_counts_once(store_url, again: str) -> None:
    store = open_store()
    held_id = hold(Broker(store), TWO)
    store.vote(held_id, ballot("alice"))
    with pytest.raises(
        VoteRefusedError,
        match=rf"{held_id}: {again.strip()} already approved; the vote did not "
        r"count \(approved by alice \(1 of 2\)\)",
    ):
        store.vote(held_id, ballot(again, reason="me again"))
    held = Broker(store).get(held_id)
    assert held.status == "pending" and held.progress == "approved by alice (1 of 2)" and len(held.votes) == 1
    refused = audit(store, held_id)[-1]
    assert refused["decision"] == "refused_vote" and "already approved" in refused["reason"]
    assert store.vote(held_id, ballot("bob")).status == "approved"


def test_an_eligible_deny_denies_even_after_an_approval(store_url) -> None:
    store = open_store()
    held_id = hold(Broker(store), TWO)
    store.vote(held_id, ballot("alice"))
    denied = store.vote(held_id, ballot("bob", approve=False, reason="wrong account"))
    assert denied.status == "denied" and denied.decided_by == "user:bob" and denied.decision_reason == "wrong account"
    assert [r["decision"] for r in audit(store, held_id)] == ["held", "approval_vote", "denial_vote", "denied"]
    # a person may change their mind until the call is decided: an approver's own deny denies
    other = hold(Broker(store), TWO, 2)
    store.vote(other, ballot("alice"))
    assert store.vote(other, ballot("alice", approve=False)).status == "denied"


def test_ineligible_voters_change_nothing(store_url) -> None:
    store = open_store()
    held_id = hold(Broker(store), FINANCE_TWO)
    refusals = [
        (ballot("bob", roles=("approver",)), "bob is not in role finance"),
        (ballot("bob", approve=False, roles=("approver", "admin")), "bob is not in role finance"),
        (ballot("ann", roles=("finance",)), "not_self: ann owns this agent"),
        (ballot("", roles=("finance",)), "a decision needs a person's name"),
    ]
    for vote, why in refusals:
        with pytest.raises(VoteRefusedError, match=why):
            store.vote(held_id, vote)
    held = Broker(store).get(held_id)
    assert held.status == "pending" and held.votes == () and held.progress == "no approvals yet (0 of 2)"
    assert [r["decision"] for r in audit(store, held_id)] == ["held"] + ["refused_vote"] * 4
    assert store.vote(held_id, ballot("carol", roles=("finance",))).status == "pending"
    # the owner may still deny their own agent's call (not_self bars approving only)
    assert store.vote(held_id, ballot("ann", approve=False, roles=("finance",))).status == "denied"


def test_not_self_without_a_known_owner_lets_no_approval_count(store_url) -> None:
    store = open_store()
    call = ToolCall("shop", "pay", {"n": 1}, identity=Identity("m", "a", ""))
    held_id = Broker(store).issue_retry(call, Decision(Verdict.ASK, "pays", "r", 60, approval=FINANCE_TWO), "h")
    with pytest.raises(VoteRefusedError, match="no owner set"):
        store.vote(held_id, ballot("carol", roles=("finance",)))


def test_a_vote_never_counts_for_another_call(store_url) -> None:
    """Votes are kept per call id and argument hash: two calls with the same tool (even the same
    arguments) each need their own quorum, and a row whose arguments differ counts for nothing."""
    store = open_store()
    broker = Broker(store)
    first, second, same_args = hold(broker, TWO, 1), hold(broker, TWO, 2), hold(broker, TWO, 1)
    store.vote(first, ballot("alice"))
    assert store.vote(second, ballot("bob")).status == "pending"
    assert store.vote(same_args, ballot("carol")).status == "pending"
    assert [len(broker.get(h).votes) for h in (first, second, same_args)] == [1, 1, 1]
    # a vote row for this id but other arguments (a row tampered with, or from a replaced call) is ignored
    held = broker.get(first)
    from dataclasses import replace

    moved = replace(held, args_hash="0" * 64)
    assert store.with_votes([moved])[0].votes == () and moved.progress == "no approvals yet (0 of 2)"


def test_concurrent_votes_from_separate_connections_resolve_exactly_once(store_url) -> None:
    """Three approvers on three connections vote at once on each of 12 calls needing two: every call
    is approved once, by two of them; the third gets the already-decided answer."""
    broker = Broker(open_store())
    calls = [hold(broker, TWO, n) for n in range(12)]
    stores = [open_store() for _ in range(3)]
    results: dict[str, list[str]] = {h: [] for h in calls}
    start = threading.Barrier(3)

    def voter(store, person: str) -> None:
        start.wait()
        for held_id in calls:
            try:
                results[held_id].append(store.vote(held_id, ballot(person)).status)
            except AlreadyDecidedError:
                results[held_id].append("late")

    threads = [threading.Thread(target=voter, args=(s, p)) for s, p in zip(stores, ("alice", "bob", "carol"), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    store = broker.store
    for held_id in calls:
        assert sorted(results[held_id]) == ["approved", "late", "pending"]
        decisions = [r["decision"] for r in audit(store, held_id)]
        assert decisions.count("approved") == 1 and decisions.count("approval_vote") == 2
        held = broker.get(held_id)
        assert held.status == "approved" and len(held.votes) == 2
        assert held.decided_by == ", ".join(f"user:{v['person']}" for v in held.votes)
    assert AuditLog(store).verify()[1] is None
    for s in stores:
        s.close()


def test_the_same_person_on_two_connections_at_once_counts_once(store_url) -> None:
    """Attack: one person with two sessions (or two CLI tokens) approving at the same instant."""
    broker = Broker(open_store())
    calls = [hold(broker, TWO, n) for n in range(8)]
    stores = [open_store() for _ in range(2)]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def voter(store, spelling: str) -> None:
        start.wait()
        for held_id in calls:
            try:
                outcomes.append(store.vote(held_id, ballot(spelling)).status)
            except VoteRefusedError:
                outcomes.append("refused")

    threads = [threading.Thread(target=voter, args=(s, p)) for s, p in zip(stores, ("alice", "ALICE"), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["pending"] * 8 + ["refused"] * 8
    for held_id in calls:
        held = broker.get(held_id)
        assert held.status == "pending" and len(held.votes) == 1 and held.progress.endswith("(1 of 2)")
    for s in stores:
        s.close()


def test_decide_routes_team_calls_through_votes(store_url) -> None:
    broker = Broker(open_store())
    held_id = hold(broker, TWO)
    for kwargs, why in (
        ({"remember": "tool"}, "cannot be remembered"),
        ({"arguments": {"n": 9}}, "2 approvals of the same arguments"),
    ):
        with pytest.raises(DecisionError, match=why):
            broker.decide(held_id, True, person="alice", roles=APPROVER, by="user:alice", channel="web", **kwargs)
    assert broker.decide(held_id, True, person="alice", roles=APPROVER, by="user:alice").status == "pending"
    with pytest.raises(DecisionError, match="one person's approval cannot decide it"):  # no person: local mode
        broker.decide(held_id, True, by="alice")
    assert broker.decide(held_id, True, person="bob", roles=APPROVER).decided_by == "user:alice, user:bob"
    # one approver's calls keep the single-decision path (no vote rows), named person or not
    plain = hold(broker, ApprovalRequirements(), 5)
    assert broker.decide(plain, True, person="alice", roles=APPROVER, by="user:alice").status == "approved"
    assert [r["decision"] for r in audit(broker.store, plain)] == ["held", "approved"]


def test_a_quorum_of_one_with_approvers_takes_edited_arguments(store_url) -> None:
    broker = Broker(open_store())
    held_id = hold(broker, ApprovalRequirements(1, (("finance",),)))
    with pytest.raises(VoteRefusedError, match="alice is not in role finance"):
        broker.decide(held_id, True, person="alice", roles=APPROVER, arguments={"n": 2})
    done = broker.decide(held_id, True, person="fiona", roles=("finance",), arguments={"n": 2})
    assert done.status == "approved" and done.edited_arguments == {"n": 2} and done.decided_by == "user:fiona"


def test_the_page_queue_and_signoff_pending_show_who_approved_so_far(store_url) -> None:
    import subprocess
    import sys

    from starlette.testclient import TestClient

    from signoff.approvers.console import render_held
    from signoff.web.app import UI, create_app
    from signoff.web.security import Guard

    broker = Broker(open_store())
    held_id = hold(broker, TWO)
    broker.decide(held_id, True, person="alice", roles=APPROVER)
    client = TestClient(
        create_app(UI(broker, Guard("tok", "127.0.0.1", 8765))), base_url="http://127.0.0.1:8765", follow_redirects=False
    )
    client.get("/?token=tok")
    [item] = client.get("/api/queue").json()["pending"]
    assert item["progress"]["text"] == "approved by alice (1 of 2)" and item["progress"]["needed"] == 1
    assert [v["person"] for v in item["votes"]] == ["alice"] and item["needs"] == "2 approvals from any approver"
    assert "   votes: approved by alice (1 of 2)\n" in render_held(broker.get(held_id))
    shown = subprocess.run([sys.executable, "-m", "signoff", "pending"], capture_output=True, text=True, check=True)
    assert "  needs 2 approvals from any approver\n  votes: approved by alice (1 of 2)\n" in shown.stdout


@pytest.mark.anyio
async def test_on_timeout_allow_never_stands_in_for_the_votes(store_url) -> None:
    """A rule's `on_timeout: allow` lets a one-approver call through on silence, never a call that
    needs named people: after one of two approvals, a timeout still times it out."""
    import anyio

    broker = Broker(open_store())
    decision = Decision(Verdict.ASK, "pays", "r", 1.0, on_timeout="allow", approval=TWO)
    async with anyio.create_task_group() as tg:
        outcomes = []

        async def wait() -> None:
            outcomes.append(await broker.hold(ToolCall("shop", "pay", {"n": 1}, identity=WHO), decision))

        tg.start_soon(wait)
        with anyio.fail_after(10):
            while not (pending := broker.pending()):
                await anyio.sleep(0.01)
        broker.decide(pending[0].id, True, person="alice", roles=APPROVER)
    assert outcomes[0].status == "timeout" and "does not apply to a call that needs 2 approvals" in outcomes[0].reason
