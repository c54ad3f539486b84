"""The two-person rule (signoff.approvals.quorum): a table of cases, then properties over any sequence of votes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.approvals.quorum import Vote, judge, tally
from signoff.model import NOBODY, ApprovalRequirements

ANYONE = ApprovalRequirements()
TWO = ApprovalRequirements(quorum=2)
FINANCE2 = ApprovalRequirements(2, (("finance",),))
FIN_AND_SEC = ApprovalRequirements(1, (("finance", "cfo"), ("security",)))
NOT_SELF = ApprovalRequirements(1, (), True)


def yes(person: str, *roles: str) -> Vote:
    return Vote.of(person, roles or ("approver",), True)


def no(person: str, *roles: str) -> Vote:
    return Vote.of(person, roles or ("approver",), False)


CASES = [
    # (requirements, votes, owner, status, approved_by, refusals)
    (ANYONE, [], None, "pending", (), []),
    (ANYONE, [yes("alice")], None, "approved", ("alice",), []),
    (ANYONE, [no("alice")], None, "denied", (), []),
    (ANYONE, [yes("alice", "viewer")], None, "pending", (), ["alice does not have the approver role"]),
    (ANYONE, [yes("alice"), yes("bob")], None, "approved", ("alice",), ["the call is already approved"]),
    (TWO, [yes("alice")], None, "pending", ("alice",), []),
    (TWO, [yes("alice"), yes("alice")], None, "pending", ("alice",), ["alice already approved"]),
    (TWO, [yes("alice"), yes("ALICE ")], None, "pending", ("alice",), ["ALICE  already approved"]),
    (TWO, [yes("alice"), yes("bob")], None, "approved", ("alice", "bob"), []),
    (TWO, [yes("alice"), no("bob")], None, "denied", ("alice",), []),
    (TWO, [yes("alice"), no("alice")], None, "denied", ("alice",), []),  # a change of mind before the quorum
    (
        TWO,
        [no("alice"), yes("bob"), yes("carol")],
        None,
        "denied",
        (),
        ["the call is already denied", "the call is already denied"],
    ),
    (FINANCE2, [yes("bob", "approver")], None, "pending", (), ["bob is not in role finance"]),
    (FINANCE2, [no("bob", "approver")], None, "pending", (), ["bob is not in role finance"]),
    (FINANCE2, [yes("ann", "finance"), yes("bob", "finance", "approver")], None, "approved", ("ann", "bob"), []),
    (FIN_AND_SEC, [yes("ann", "finance")], None, "pending", (), ["ann is not in role security"]),
    (FIN_AND_SEC, [yes("sam", "security")], None, "pending", (), ["sam is not in role any of finance, cfo"]),
    (FIN_AND_SEC, [yes("cleo", "cfo", "security")], None, "approved", ("cleo",), []),
    (NOT_SELF, [yes("carol")], "carol", "pending", (), ["not_self: carol owns this agent"]),
    (NOT_SELF, [yes("Carol")], "carol", "pending", (), ["not_self: Carol owns this agent"]),
    (NOT_SELF, [yes("carol"), yes("dave")], "carol", "approved", ("dave",), ["not_self: carol owns this agent"]),
    (NOT_SELF, [no("carol")], "carol", "denied", (), []),  # the owner may stop their own agent
    (
        NOT_SELF,
        [yes("dave")],
        None,
        "pending",
        (),
        ["not_self: this agent has no owner set (owner: / SIGNOFF_OWNER), so no approval can count"],
    ),
    (
        NOT_SELF,
        [yes("dave")],
        "",
        "pending",
        (),
        ["not_self: this agent has no owner set (owner: / SIGNOFF_OWNER), so no approval can count"],
    ),
    (ANYONE, [yes("")], None, "pending", (), ["a decision needs a person's name"]),
    (NOBODY, [yes("root", "approver", "admin", "finance")], "x", "pending", (), ["root is not in role signoff:no-one"]),
]


@pytest.mark.parametrize(("requirements", "votes", "owner", "status", "approved_by", "refusals"), CASES)
def test_tally(requirements, votes, owner, status, approved_by, refusals) -> None:
    result = tally(requirements, votes, owner)
    assert result.status == status
    assert result.approved_by == approved_by
    assert [r.reason for r in result.refused] == refusals
    assert result.needed == (0 if status == "approved" else max(0, requirements.quorum - len(approved_by)))


def test_judge_says_why_the_new_vote_did_not_count() -> None:
    after, why = judge(TWO, [yes("alice")], yes("alice"))
    assert (after.status, why) == ("pending", "alice already approved")
    after, why = judge(TWO, [yes("alice")], yes("bob"))
    assert (after.status, why, after.summary()) == ("approved", None, "approved by alice, bob")
    after, why = judge(FINANCE2, [], yes("bob"))
    assert why == "bob is not in role finance" and after.summary() == "0 of 2 approvals"
    assert judge(TWO, [yes("alice")], no("bob"))[0].summary() == "denied by bob"
    assert tally(TWO, [yes("alice")]).summary() == "1 of 2 approvals (alice)"


def test_requirements_round_trip_and_unreadable_ones_let_nobody_approve() -> None:
    for req in (ANYONE, TWO, FINANCE2, FIN_AND_SEC, NOT_SELF):
        assert ApprovalRequirements.from_dict(req.as_dict()) == req
    for bad in (
        {},
        {"quorum": 0},
        {"quorum": "2"},
        {"quorum": True},
        {"quorum": 2, "approvers": "finance"},
        {"quorum": 1, "approvers": [[]]},
        "2",
        [2],
    ):
        assert ApprovalRequirements.from_dict(bad) == NOBODY, bad


# ---------------------------------------------------------------------------- properties

PEOPLE = ["alice", "Alice", "bob", "carol", "dave", "eve", ""]
ROLES = ["approver", "finance", "security", "cfo", "viewer"]

votes_st = st.lists(
    st.builds(Vote, st.sampled_from(PEOPLE), st.frozensets(st.sampled_from(ROLES), max_size=3), st.booleans()), max_size=12
)
requirements_st = st.builds(
    ApprovalRequirements,
    st.integers(1, 4),
    st.lists(st.lists(st.sampled_from(ROLES[1:4]), min_size=1, max_size=2, unique=True).map(tuple), max_size=2).map(tuple),
    st.booleans(),
)
owner_st = st.sampled_from([None, "", "alice", "carol", "nobody"])


def eligible_to_approve(req: ApprovalRequirements, vote: Vote, owner: str | None) -> bool:
    """Written independently of quorum.py: the spec in plain terms."""
    if not vote.person.strip():
        return False
    if req.approvers:
        if not all(vote.roles & set(group) for group in req.approvers):
            return False
    elif "approver" not in vote.roles:
        return False
    return not (req.not_self and (not owner or vote.person.casefold() == owner.casefold()))


def eligible_to_deny(req: ApprovalRequirements, vote: Vote) -> bool:
    if not vote.person.strip():
        return False
    if req.approvers:
        return all(vote.roles & set(group) for group in req.approvers)
    return "approver" in vote.roles


@settings(max_examples=400, deadline=None)
@given(requirements_st, votes_st, owner_st)
def test_never_approved_with_fewer_than_quorum_distinct_eligible_people(req, votes, owner) -> None:
    result = tally(req, votes, owner)
    if result.status == "approved":
        people = {v.person.casefold() for v in votes if v.approve and eligible_to_approve(req, v, owner)}
        assert len(people) >= req.quorum
        assert len({p.casefold() for p in result.approved_by}) == len(result.approved_by) >= req.quorum
        assert all(
            eligible_to_approve(
                req,
                Vote(p, next(v.roles for v in votes if v.person == p and v.approve and eligible_to_approve(req, v, owner)), True),
                owner,
            )
            for p in result.approved_by
        )


@settings(max_examples=400, deadline=None)
@given(requirements_st, votes_st, owner_st)
def test_any_eligible_deny_before_the_decision_denies(req, votes, owner) -> None:
    result = tally(req, votes, owner)
    first_deny = next((i for i, v in enumerate(votes) if not v.approve and eligible_to_deny(req, v)), None)
    if first_deny is None:
        assert result.status != "denied"
        return
    before = tally(req, votes[:first_deny], owner)
    assert result.status == ("approved" if before.status == "approved" else "denied")


@settings(max_examples=400, deadline=None)
@given(requirements_st, votes_st, owner_st)
def test_ineligible_votes_never_change_the_state(req, votes, owner) -> None:
    def counts(v: Vote) -> bool:
        return eligible_to_approve(req, v, owner) if v.approve else eligible_to_deny(req, v)

    kept = [v for v in votes if counts(v)]
    full, only_eligible = tally(req, votes, owner), tally(req, kept, owner)
    assert (full.status, full.approved_by, full.denied_by) == (
        only_eligible.status,
        only_eligible.approved_by,
        only_eligible.denied_by,
    )
    refused_people = [votes[r.index] for r in full.refused]
    assert all(v in refused_people for v in votes if not counts(v))
