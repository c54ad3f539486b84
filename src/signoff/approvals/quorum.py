"""The two-person rule as a pure function: who may decide a held call, and when it is decided.

A held call carries its rules' `ApprovalRequirements` (model.py). People's votes arrive one by
one, from any channel; `tally` replays them in order and says whether the call is still pending,
approved or denied, and why each vote that did not count was refused ("alice already
approved", "bob is not in role finance", "not_self: carol owns this agent"). The store keeps
the votes and calls this on every new one (team mode); nothing here does I/O.

The rules, strictest first:
- a vote from someone ineligible changes nothing (it is refused with the reason);
- eligible means: holding one role of every approvers list (none: the `approver` role);
- any eligible deny denies, even after some approvals (a person may change their mind until the
  call is decided); `not_self` bars the owner from approving, not from denying;
- approved once `quorum` *different* eligible people approved (names compare case-insensitively,
  so "Alice" and "alice" are one person); a second approval by the same person is refused;
- with `not_self` and no owner known for the agent, nobody can be shown not to be its owner: every
  approval is refused (fail closed; set `owner:`/SIGNOFF_OWNER on the proxy);
- once approved or denied, later votes are refused: the first complete decision wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from signoff.model import APPROVER_ROLE, ApprovalRequirements

Status = Literal["pending", "approved", "denied"]


@dataclass(frozen=True)
class Vote:
    """One person's approve or deny, with the roles they held when they voted."""

    person: str
    roles: frozenset[str]
    approve: bool

    @classmethod
    def of(cls, person: str, roles: Iterable[str], approve: bool) -> Vote:
        return cls(person, frozenset(roles), approve)


@dataclass(frozen=True)
class Refused:
    """A vote that did not count: its position in the votes, and why."""

    index: int
    person: str
    reason: str


@dataclass(frozen=True)
class Tally:
    """Where a held call stands after its votes."""

    status: Status
    approved_by: tuple[str, ...]
    """The distinct eligible people whose approvals counted, in order."""
    denied_by: str | None
    needed: int
    """Approvals still needed (0 once approved)."""
    refused: tuple[Refused, ...]

    @property
    def decided(self) -> bool:
        return self.status != "pending"

    def summary(self) -> str:
        """`1 of 2 approvals (alice)`, `approved by alice, bob`, `denied by carol`."""
        if self.status == "denied":
            return f"denied by {self.denied_by}"
        if self.status == "approved":
            return f"approved by {', '.join(self.approved_by)}"
        have = len(self.approved_by)
        who = f" ({', '.join(self.approved_by)})" if self.approved_by else ""
        return f"{have} of {have + self.needed} approvals{who}"

    def progress(self) -> str:
        """What the page and `signoff pending` show on a held card: `approved by alice (1 of 2)`,
        `no approvals yet (0 of 2)`, `approved by alice, bob (2 of 2)`, `denied by carol`."""
        if self.status == "denied":
            return f"denied by {self.denied_by}"
        have = len(self.approved_by)
        count = f"({have} of {have + self.needed})"
        return f"approved by {', '.join(self.approved_by)} {count}" if have else f"no approvals yet {count}"


def same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def ineligible(requirements: ApprovalRequirements, person: str, roles: frozenset[str]) -> str | None:
    """Why `person` may not decide a call with these requirements at all, or None."""
    if not person.strip():
        return "a decision needs a person's name"
    if not requirements.approvers:
        return None if APPROVER_ROLE in roles else f"{person} does not have the {APPROVER_ROLE} role"
    for group in requirements.approvers:
        if not roles & set(group):
            wanted = group[0] if len(group) == 1 else f"any of {', '.join(group)}"
            return f"{person} is not in role {wanted}"
    return None


def cannot_approve(requirements: ApprovalRequirements, person: str, owner: str | None) -> str | None:
    """Why an otherwise eligible person may not approve (not_self), or None."""
    if not requirements.not_self:
        return None
    if not owner or not owner.strip():
        return "not_self: this agent has no owner set (owner: / SIGNOFF_OWNER), so no approval can count"
    if same_person(person, owner):
        return f"not_self: {person} owns this agent"
    return None


def tally(requirements: ApprovalRequirements, votes: Sequence[Vote], owner: str | None = None) -> Tally:
    """Replay `votes` in order under `requirements`; `owner` is the call's agent's owner."""
    approved: list[str] = []
    refused: list[Refused] = []
    status: Status = "pending"
    denied_by: str | None = None
    for index, vote in enumerate(votes):
        why = None
        if status != "pending":
            why = f"the call is already {status}"
        else:
            why = ineligible(requirements, vote.person, vote.roles)
        if why is None and vote.approve:
            why = cannot_approve(requirements, vote.person, owner)
            if why is None and any(same_person(vote.person, p) for p in approved):
                why = f"{vote.person} already approved"
        if why is not None:
            refused.append(Refused(index, vote.person, why))
            continue
        if not vote.approve:
            status, denied_by = "denied", vote.person
        else:
            approved.append(vote.person)
            if len(approved) >= requirements.quorum:
                status = "approved"
    needed = 0 if status == "approved" else max(0, requirements.quorum - len(approved))
    return Tally(status, tuple(approved), denied_by, needed, tuple(refused))


def judge(
    requirements: ApprovalRequirements, votes: Sequence[Vote], vote: Vote, owner: str | None = None
) -> tuple[Tally, str | None]:
    """The tally with `vote` added, and why it was refused (None: it counted). The store calls
    this inside the transaction that records the vote, so a refused vote is never stored as one."""
    after = tally(requirements, [*votes, vote], owner)
    last = after.refused[-1] if after.refused and after.refused[-1].index == len(votes) else None
    return after, None if last is None else last.reason
