"""The two-person rule with named people: votes through the page's API (signed-in sessions) and
`signoff approve/deny --token` (real subprocesses); attacks: one person with two sessions or two
tokens counts once, a person's role is judged (and a refusal audited) by the store."""

from __future__ import annotations

import subprocess
import sys

import pytest

from signoff.approvals.broker import Broker
from signoff.model import ApprovalRequirements, Decision, Identity, ToolCall, Verdict
from signoff.team.users import People
from test_team_users import PASSWORD
from test_team_web import csrf_of, page, sign_in
from test_web import post

TWO = ApprovalRequirements(2)
FINANCE = ApprovalRequirements(2, (("finance",),), True)


def hold(broker: Broker, needs: ApprovalRequirements, n: int = 1) -> str:
    call = ToolCall("shop", "pay", {"n": n}, identity=Identity("laptop-ann", "claude-code", "ann"))
    return broker.issue_retry(call, Decision(Verdict.ASK, "pays", "r", 300, approval=needs), "hash")


class Session:
    """One signed-in page session: its client and its next CSRF token (each is single use)."""

    def __init__(self, broker: Broker, people: People, name: str, secret: str):
        self.client = page(broker, people)
        assert sign_in(self.client, name, secret).status_code == 200
        self.csrf = csrf_of(self.client, "/")

    def decide(self, held_id: str, approve: bool = True, **extra):
        response = post(self.client, "/api/decide", {"id": held_id, "approve": approve, **extra}, self.csrf)
        self.csrf = response.json().get("csrf", self.csrf)
        return response


def test_two_people_on_the_page_approve_and_one_person_with_two_sessions_counts_once(store_url) -> None:
    broker = Broker()
    people = People(broker.store)
    alice = people.add("alice", ["approver"], PASSWORD)
    bob = people.add("bob", ["approver"], PASSWORD)
    held_id = hold(broker, TWO)
    first, second = Session(broker, people, "alice", alice), Session(broker, people, "alice", alice)
    voted = first.decide(held_id, reason="checked the invoice")
    assert voted.status_code == 200 and voted.json()["status"] == "pending"
    assert voted.json()["progress"]["text"] == "approved by alice (1 of 2)"
    again = second.decide(held_id)  # alice's other session
    assert again.status_code == 403 and "alice already approved" in again.json()["error"]
    [card] = first.client.get("/api/queue").json()["pending"]
    assert card["progress"]["text"] == "approved by alice (1 of 2)" and card["progress"]["needed"] == 1
    bobs = Session(broker, people, "bob", bob)
    done = bobs.decide(held_id)
    assert done.json()["status"] == "approved" and done.json()["by"] == "user:alice, user:bob"
    late = second.decide(held_id, approve=False)
    assert late.status_code == 409 and "already approved by user:alice, user:bob" in late.json()["error"]
    history = bobs.client.get("/api/audit", params={"by": "user:bob"}).json()["rows"]  # bob's own history
    assert [(r["decision"], r["decided_by"]) for r in history] == [
        ("approved", "user:alice, user:bob"),
        ("approval_vote", "user:bob"),
    ]
    decisions = [(r["decision"], r["decided_by"], r["channel"]) for r in broker.store.audit_rows() if r["held_id"] == held_id][1:]
    assert decisions == [
        ("approval_vote", "user:alice", "web"),
        ("refused_vote", "user:alice", "web"),
        ("approval_vote", "user:bob", "web"),
        ("approved", "user:alice, user:bob", "web"),
    ]


def test_the_store_judges_roles_and_not_self_and_audits_the_refusal(store_url) -> None:
    broker = Broker()
    people = People(broker.store)
    secrets_ = {
        name: people.add(name, roles, PASSWORD)
        for name, roles in (("ann", ["finance"]), ("alice", ["approver"]), ("fiona", ["finance"]))
    }
    held_id = hold(broker, FINANCE)
    refused = Session(broker, people, "alice", secrets_["alice"]).decide(held_id)
    assert refused.status_code == 403 and "alice is not in role finance" in refused.json()["error"]
    own = Session(broker, people, "ann", secrets_["ann"]).decide(held_id)
    assert own.status_code == 403 and "not_self: ann owns this agent" in own.json()["error"]
    assert Session(broker, people, "fiona", secrets_["fiona"]).decide(held_id).json()["status"] == "pending"
    rows = [(r["decision"], r["decided_by"]) for r in broker.store.audit_rows() if r["held_id"] == held_id][1:]
    assert rows == [("refused_vote", "user:alice"), ("refused_vote", "user:ann"), ("approval_vote", "user:fiona")]
    assert broker.get(held_id).progress == "approved by fiona (1 of 2)"


def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signoff", *args, *(("--token", token) if token else ())],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_cli_tokens_vote_and_two_tokens_of_one_person_count_once(store_url) -> None:
    broker = Broker()
    people = People(broker.store)
    for name in ("alice", "bob"):
        people.add(name, ["approver"], PASSWORD)
    tokens = [people.new_token("alice"), people.new_token("alice"), people.new_token("bob")]
    held_id, other = hold(broker, TWO, 1), hold(broker, TWO, 2)
    first = cli("approve", held_id, token=tokens[0])
    assert first.returncode == 0 and first.stdout.strip() == f"pending {held_id} shop.pay: approved by alice (1 of 2)"
    second = cli("approve", held_id, token=tokens[1])  # alice's second token
    assert second.returncode == 5 and "alice already approved" in second.stderr
    assert "votes: approved by alice (1 of 2)" in cli("pending").stdout
    assert cli("approve", other, token=tokens[2]).stdout.startswith(f"pending {other}")  # a vote on another call
    assert broker.get(held_id).progress == "approved by alice (1 of 2)"  # …does not count here
    done = cli("approve", held_id, "--reason", "two of us", token=tokens[2])
    assert done.returncode == 0 and done.stdout.strip() == (
        f"approved {held_id} shop.pay (two of us): approved by alice, bob (2 of 2)"
    )
    assert cli("deny", held_id, token=tokens[0]).returncode == 2  # already decided
    assert cli("approve", other, token=None).returncode == 5  # team mode wants a token


@pytest.mark.parametrize("extra", [{"remember": "tool"}, {"arguments": {"n": 7}}])
def test_a_vote_cannot_be_remembered_or_change_the_arguments(store_url, extra: dict) -> None:
    broker = Broker()
    people = People(broker.store)
    people.add("root", ["approver", "admin"], PASSWORD)
    held_id = hold(broker, TWO)
    session = Session(broker, people, "root", people.row("root")["totp_secret"])
    refused = session.decide(held_id, **extra)
    assert refused.status_code == 400 and held_id in refused.json()["error"]
    assert broker.get(held_id).votes == ()
