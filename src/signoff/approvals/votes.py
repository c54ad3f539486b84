"""Votes on a held call (team mode): what a person's approve or deny changes, for both stores.

A call whose rules name `approvers`, a `quorum` above one or `not_self` is decided by votes. Each
store records a vote in ONE transaction that also re-counts the call's stored votes with
`quorum.judge` and, when the quorum is reached or an eligible person denies, resolves the call
(first decision wins: the conditional move out of `pending` happens once). This module is the part
both stores share and does no I/O: the vote row, its audit row, and the resolution, if any.

Every vote attempt on a pending call is an audit row: `approval_vote` / `denial_vote` when it
counted, `refused_vote` (with the reason from the tally) when it did not; the final decision row
names every approver in `decided_by`. Votes are kept per call id *and* argument hash, so a vote
cannot count for another call, nor for the same call id with other arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from signoff.approvals.quorum import Tally, Vote, judge, tally
from signoff.approvals.records import HeldCall, Resolution, as_votes, stored_votes, transition_audit
from signoff.model import canonical_json


@dataclass(frozen=True)
class Ballot:
    """One person's vote as a channel hands it to the store: who (their name and the roles they
    hold now, from their sign-in or CLI token), how the audit names them (`user:alice`), and what."""

    person: str
    roles: tuple[str, ...]
    approve: bool
    by: str
    channel: str
    reason: str | None = None
    arguments: Mapping[str, Any] | None = None
    """Edited arguments: only with a quorum of one (several people must approve the same call)."""

    @classmethod
    def of(
        cls,
        person: str,
        roles: Iterable[str],
        approve: bool,
        *,
        by: str | None = None,
        channel: str = "cli",
        reason: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> Ballot:
        person = person.strip()
        return cls(person, tuple(sorted(set(roles))), approve, by or f"user:{person}", channel, reason, arguments)


@dataclass(frozen=True)
class Count:
    """What a store writes for one vote on a pending call, in one transaction."""

    tally: Tally
    refused: str | None
    """Why the vote did not count (then only `audit` is written), or None."""
    row: dict[str, Any]
    """The `votes` row (written only when the vote counted)."""
    audit: dict[str, Any]
    resolution: Resolution | None
    """The call's move to approved / denied when this vote decided it."""


def person_key(person: str) -> str:
    """The same key for `Alice` and ` alice` (quorum.same_person): one person votes once."""
    return person.strip().casefold()


def count(held: HeldCall, rows: Sequence[Mapping[str, Any]], ballot: Ballot, now: float) -> Count:
    """Judge `ballot` against the call's stored vote `rows` (read inside the store's transaction)."""
    mine = stored_votes(rows, held)
    owner = held.identity.owner if held.identity is not None else None
    after, why = judge(held.requirements, as_votes(mine), Vote.of(ballot.person, ballot.roles, ballot.approve), owner)
    if why is not None:
        before = tally(held.requirements, as_votes(mine), owner)
        why = f"{held.id}: {why}; the vote did not count ({before.progress()})"
    row = {
        "held_id": held.id,
        "args_hash": held.args_hash,
        "person": ballot.person.strip(),
        "person_key": person_key(ballot.person),
        "decided_by": ballot.by,
        "roles": canonical_json(list(ballot.roles)),
        "vote": "approve" if ballot.approve else "deny",
        "reason": ballot.reason,
        "channel": ballot.channel,
        "at": now,
    }
    decision = "refused_vote" if why else "approval_vote" if ballot.approve else "denial_vote"
    said = why if why else "; ".join(p for p in (ballot.reason, after.progress()) if p)
    verb = "approve" if ballot.approve else "deny"
    audit = transition_audit(held, Resolution(decision, ballot.by, ballot.channel, f"{verb}: {said}"), None, now)
    resolution = None
    if why is None and after.decided:
        if after.status == "approved":
            by_of = {person_key(r["person"]): r["decided_by"] for r in [*mine, row]}
            by = ", ".join(by_of[person_key(p)] for p in after.approved_by)
            reason = "; ".join(p for p in (after.progress(), ballot.reason) if p)
            resolution = Resolution("approved", by, ballot.channel, reason, ballot.arguments, live_only=True)
        else:
            resolution = Resolution("denied", ballot.by, ballot.channel, ballot.reason, live_only=True)
    return Count(after, why, row, audit, resolution)
