"""People in team mode (team/users.py, team/factors.py) over the real SQLite store: argon2
passwords, hashed tokens, TOTP replay, throttled guessing, roles against a rule's approvers."""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

import pyotp
import pytest

from signoff import paths
from signoff.errors import TeamError
from signoff.team.factors import SignIn, totp_step
from signoff.team.throttle import Throttle
from signoff.team.users import People, eligible
from test_totp_throttle import Clock

PASSWORD = "correct horse battery"


@pytest.fixture
def people(store: Any) -> People:
    return People(store)


def raw_rows(table: str) -> list[dict]:
    """The table as stored, read past signoff (on whichever backend the test runs)."""
    url = os.environ.get("SIGNOFF_STORE")
    if url:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(url, row_factory=dict_row) as pg:
            return pg.execute(f"SELECT * FROM {table}").fetchall()
    conn = sqlite3.connect(paths.db_path())
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]
    finally:
        conn.close()


def test_passwords_are_argon2_hashes_and_verify(people: People) -> None:
    secret = people.add("alice", ["approver"], PASSWORD)
    assert secret and len(secret) >= 16
    [row] = raw_rows("users")
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in json.dumps(row)
    assert people.check_password("alice", PASSWORD).roles == ("approver",)
    assert people.check_password("alice", PASSWORD + "x") is None
    assert people.check_password("nobody", PASSWORD) is None  # same hashing cost, no person


def test_bad_names_roles_and_passwords_are_refused(people: People) -> None:
    with pytest.raises(TeamError, match="at least"):
        people.add("bob", ["approver"], "short")
    with pytest.raises(TeamError, match="name"):
        people.add("../bob", ["approver"], PASSWORD)
    with pytest.raises(TeamError, match="role"):
        people.add("bob", ["Approver; DROP"], PASSWORD)
    people.add("bob", ["approver"], PASSWORD)
    with pytest.raises(TeamError, match="already exists"):
        people.add("bob", ["finance"], PASSWORD)


def test_cli_tokens_are_stored_hashed_and_die_with_their_person(people: People) -> None:
    people.add("alice", ["approver"], PASSWORD)
    token = people.new_token("alice")
    [row] = raw_rows("user_secrets")
    assert token not in json.dumps(row) and row["kind"] == "token" and len(row["hash"]) == 64
    assert people.by_token(token).name == "alice"
    assert people.by_token(token + "x") is None and people.by_token("") is None and people.by_token(None) is None
    people.remove("alice")
    assert people.by_token(token) is None
    assert raw_rows("user_secrets") == []
    people.add("alice", ["approver"], PASSWORD)  # a new alice does not inherit the old token
    assert people.by_token(token) is None


def test_enrolment_links_work_once(people: People) -> None:
    people.add("carol", ["approver"], PASSWORD, totp=False)
    link = people.new_enrolment("carol")
    assert people.enrolment(link).name == "carol"  # looking spends nothing
    assert people.enrolment(link, spend=True).name == "carol"
    assert people.enrolment(link) is None and people.enrolment(link, spend=True) is None
    expired = people.new_enrolment("carol", ttl=-1)
    assert people.enrolment(expired) is None


def test_totp_codes_are_accepted_once(people: People) -> None:
    secret = people.add("alice", ["approver"], PASSWORD)
    sign_in = SignIn(people)
    code = pyotp.TOTP(secret).now()
    assert sign_in.with_password("alice", PASSWORD, code, "c1").person.name == "alice"
    replay = sign_in.with_password("alice", PASSWORD, code, "c2")
    assert replay.person is None and "reused" in replay.problem
    step = totp_step(secret, code)
    assert step is not None and totp_step(secret, "12345") is None and totp_step(secret, "abcdef") is None


def test_wrong_passwords_are_throttled_even_with_the_right_one_next(people: People) -> None:
    secret = people.add("alice", ["approver"], PASSWORD)
    clock = Clock()
    sign_in = SignIn(people, Throttle(clock))
    for _ in range(Throttle.FREE_PER_CLIENT + 1):
        assert sign_in.with_password("alice", "guess-guess-guess", "000000", "10.0.0.9").person is None
    locked = sign_in.with_password("alice", PASSWORD, pyotp.TOTP(secret).now(), "10.0.0.9")
    assert locked.person is None and locked.wait > 0 and "too many" in locked.problem
    clock.now += locked.wait
    assert sign_in.with_password("alice", PASSWORD, pyotp.TOTP(secret).now(), "10.0.0.9").person is not None


def test_a_person_without_totp_cannot_sign_in_with_a_password_alone(people: People) -> None:
    people.add("dave", ["approver"], PASSWORD, totp=False)
    verdict = SignIn(people).with_password("dave", PASSWORD, "", "c")
    assert verdict.person is None and "passkey" in verdict.problem


def test_roles_against_a_rules_approvers() -> None:
    assert eligible(("approver",), None) is None
    assert "approver" in eligible(("finance",), None)
    finance = {"quorum": 1, "approvers": [["finance", "cfo"]], "not_self": False}
    assert eligible(("finance",), finance) is None and eligible(("cfo",), json.dumps(finance)) is None
    assert "finance or cfo" in eligible(("approver",), finance)
    both = {"approvers": [["finance"], ["security"]]}
    assert eligible(("finance",), both) and eligible(("finance", "security"), both) is None
    assert eligible(("approver",), "{not json") is not None  # unreadable requirements: nobody (fail closed)
