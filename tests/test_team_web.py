"""Team mode on the page (web/team.py) through Starlette's TestClient: sign-in with password and
TOTP, sessions, roles, presence, per-person history, forwarded headers; and attacks on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pyotp
import pytest
from starlette.testclient import TestClient

from signoff.approvals.broker import Broker
from signoff.model import ApprovalRequirements, Decision, ToolCall, Verdict
from signoff.team.users import People
from signoff.web.app import UI, create_app
from signoff.web.security import Guard
from signoff.web.team import IDLE, TeamPage
from test_team_users import PASSWORD
from test_totp_throttle import Clock
from test_web import ORIGIN, TOKEN, hold, post

PUBLIC = "https://approvals.example.com"


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def people(broker: Broker) -> People:
    return People(broker.store)


@pytest.fixture
def secrets_(people: People) -> dict[str, str]:
    return {"alice": people.add("alice", ["approver"], PASSWORD), "bob": people.add("bob", ["finance"], PASSWORD)}


_used: dict[str, int] = {}


def fresh_code(secret: str) -> str:
    """A TOTP code not used yet: now, then the next step's (accepted one step early), as a person
    signing in twice within 30 s would need to wait for."""
    nth = _used.get(secret, 0)
    _used[secret] = nth + 1
    assert nth < 2, "a third sign-in within one TOTP step: use another person"
    return pyotp.TOTP(secret).at(time.time() + 30 * nth)


def page(
    broker: Broker,
    people: People,
    *,
    clock=None,
    public_url: str | None = None,
    trusted=(),
    client=("testclient", 50000),
    base: str = ORIGIN,
) -> TestClient:
    guard = Guard(TOKEN, "127.0.0.1", 8765, public_url=public_url, trusted_proxies=trusted)
    team = TeamPage(people, guard, **({"clock": clock} if clock else {}))
    return TestClient(create_app(UI(broker, guard), team), base_url=base, follow_redirects=False, client=client)


def csrf_of(client: TestClient, path: str = "/signin") -> str:
    text = client.get(path).text
    return text.split('name="csrf" content="')[1].split('"')[0]


def sign_in(
    client: TestClient, name: str, secret: str | None, *, password: str = PASSWORD, code: str | None = None, origin: str = ORIGIN
):
    body = {"name": name, "password": password, "totp": code if code is not None else fresh_code(secret)}
    return client.post(
        "/signin",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf_of(client), "Origin": origin},
    )


def signed_in(broker: Broker, people: People, name: str, secret: str, **kwargs) -> tuple[TestClient, str]:
    client = page(broker, people, **kwargs)
    assert sign_in(client, name, secret).status_code == 200
    return client, csrf_of(client, "/")


def test_without_a_session_the_page_sends_you_to_sign_in_and_the_token_opens_nothing(
    broker: Broker, people: People, secrets_: dict
) -> None:
    client = page(broker, people)
    first = client.get("/")
    assert first.status_code == 303 and first.headers["location"] == "/signin"
    assert client.get("/api/queue").status_code == 401
    assert client.get("/events").status_code == 401
    traded = client.get(f"/?token={TOKEN}")  # the single-user URL token is not a person
    assert traded.status_code == 303 and traded.headers["location"] == "/signin" and "set-cookie" not in traded.headers
    client.cookies.set("signoff_token", TOKEN)
    assert client.get("/api/queue").status_code == 401
    signin = client.get("/signin")
    assert (
        signin.status_code == 200
        and 'id="signin"' in signin.text
        and "script-src 'self'" in signin.headers["content-security-policy"]
    )


def test_a_review_link_opens_nothing_without_signing_in(broker: Broker, people: People, secrets_: dict) -> None:
    from signoff.web import links

    held_id = hold(broker)
    client = page(broker, people)
    link = links.review_link(ORIGIN, held_id)
    opened = client.post("/" + link.split("/", 3)[3], headers={"Origin": ORIGIN})
    assert opened.status_code == 303  # the link is spent and its call cookie set, but in team mode …
    assert client.get("/api/queue").status_code == 401  # … only a signed-in person sees or decides
    assert client.get(f"/api/held/{held_id}").status_code == 401
    assert post(client, "/api/decide", {"id": held_id, "approve": True}, csrf_of(client)).status_code == 401
    assert broker.get(held_id).status == "pending"


def test_wrong_password_wrong_totp_and_replayed_totp_are_refused(broker: Broker, people: People, secrets_: dict) -> None:
    client = page(broker, people)
    assert sign_in(client, "alice", None, password="not the password", code="123456").status_code == 401
    assert sign_in(client, "nobody", None, code="123456").status_code == 401
    wrong = sign_in(client, "alice", secrets_["alice"], code="000000")
    assert wrong.status_code == 401 and "TOTP" in wrong.json()["error"]
    code = pyotp.TOTP(secrets_["alice"]).now()
    fresh = page(broker, people, client=("10.9.9.9", 1))  # a new client: not throttled
    ok = sign_in(fresh, "alice", None, code=code)
    assert ok.status_code == 200 and "signoff_session" in ok.headers["set-cookie"]
    replay = sign_in(page(broker, people, client=("10.9.9.10", 1)), "alice", None, code=code)
    assert replay.status_code == 401 and "reused" in replay.json()["error"]


def test_guessing_passwords_is_throttled(broker: Broker, people: People, secrets_: dict) -> None:
    client = page(broker, people)
    answers = [
        sign_in(client, "alice", secrets_["alice"], password=f"guess-{i}-guess", code="123456").status_code for i in range(5)
    ]
    assert answers[:4] == [401] * 4 and answers[4] == 429
    locked = sign_in(client, "alice", secrets_["alice"])
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1


def test_the_session_cookie_is_httponly_strict_and_secure_behind_https(broker: Broker, people: People, secrets_: dict) -> None:
    cookie = sign_in(page(broker, people), "alice", secrets_["alice"]).headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "secure" not in cookie.lower()
    client = page(broker, people, public_url=PUBLIC, base=PUBLIC, client=("10.9.9.11", 1))
    cookie = sign_in(client, "alice", secrets_["alice"], origin=PUBLIC).headers["set-cookie"]
    assert "secure" in cookie.lower()


def test_a_decision_names_the_person_and_their_history_can_be_filtered(broker: Broker, people: People, secrets_: dict) -> None:
    held_id = hold(broker)
    client, csrf = signed_in(broker, people, "alice", secrets_["alice"])
    ok = post(client, "/api/decide", {"id": held_id, "approve": True, "reason": "fine"}, csrf)
    assert ok.status_code == 200 and ok.json()["by"] == "user:alice"
    assert broker.get(held_id).decided_by == "user:alice"
    rows = client.get("/api/audit", params={"by": "user:alice"}).json()["rows"]
    assert [r["decision"] for r in rows] == ["approved"] and rows[0]["decided_by"] == "user:alice"
    assert client.get("/api/audit", params={"by": "user:bob"}).json()["rows"] == []
    page_html = client.get("/").text
    assert 'name="user" content="alice"' in page_html and 'name="team" content="1"' in page_html


def test_csrf_and_same_origin_still_apply_to_signed_in_posts(broker: Broker, people: People, secrets_: dict) -> None:
    held_id = hold(broker)
    client, csrf = signed_in(broker, people, "alice", secrets_["alice"])
    assert post(client, "/api/decide", {"id": held_id, "approve": True}, None).status_code == 403
    assert post(client, "/api/decide", {"id": held_id, "approve": True}, "forged").status_code == 403
    # the session cookie riding on a request from another origin (a cross-site form or fetch)
    assert post(client, "/api/decide", {"id": held_id, "approve": True}, csrf, origin="http://evil.example").status_code == 403
    assert post(client, "/api/decide", {"id": held_id, "approve": True}, csrf, origin=None).status_code == 403
    assert client.get("/api/queue", headers={"Host": "evil.example:8765"}).status_code == 421
    assert broker.get(held_id).status == "pending"
    no_csrf = client.post(
        "/signin",
        content=json.dumps({"name": "alice", "password": PASSWORD}),
        headers={"Content-Type": "application/json", "Origin": ORIGIN},
    )
    assert no_csrf.status_code == 403
    cross = client.post(
        "/signin",
        content="{}",
        headers={"Content-Type": "application/json", "Origin": "http://evil.example", "X-CSRF-Token": csrf_of(client, "/")},
    )
    assert cross.status_code == 403


def test_roles_decide_who_may_decide(broker: Broker, people: People, secrets_: dict) -> None:
    held_id = hold(broker)
    bob, csrf = signed_in(broker, people, "bob", secrets_["bob"])
    refused = post(bob, "/api/decide", {"id": held_id, "approve": True}, csrf)
    assert refused.status_code == 403 and "approver" in refused.json()["error"]
    refused = post(bob, "/api/decide", {"id": held_id, "approve": False}, refused.json()["csrf"])
    assert refused.status_code == 403 and broker.get(held_id).status == "pending"
    kill = post(bob, "/api/kill", {"on": True}, refused.json()["csrf"])
    assert kill.status_code == 403 and not broker.kill_state().on
    # a rule naming `approvers: [finance]` (the held row carries it): alice may not decide it, bob may
    finance = broker.issue_retry(
        ToolCall("bank", "pay", {"amount": 5}),
        Decision(Verdict.ASK, "money", "r", 300, approval=ApprovalRequirements(approvers=(("finance",),))),
    )
    alice, acsrf = signed_in(broker, people, "alice", secrets_["alice"], client=("10.0.0.2", 1))
    no = post(alice, "/api/decide", {"id": finance, "approve": False}, acsrf)
    assert no.status_code == 403 and "finance" in no.json()["error"] and broker.get(finance).status == "pending"
    # (an approval under rule approvers waits for the quorum wiring: the broker refuses it, fail closed)
    yes = post(bob, "/api/decide", {"id": finance, "approve": False, "reason": "not this month"}, kill.json()["csrf"])
    assert yes.status_code == 200 and broker.get(finance).decided_by == "user:bob"


def test_idle_sessions_are_signed_out_and_removed_people_lose_theirs(broker: Broker, people: People, secrets_: dict) -> None:
    clock = Clock()
    client, _ = signed_in(broker, people, "alice", secrets_["alice"], clock=clock)
    clock.now += IDLE - 1
    assert client.get("/api/queue").status_code == 200  # used: the idle time starts again
    clock.now += IDLE + 1
    assert client.get("/api/queue").status_code == 401
    bob, _ = signed_in(broker, people, "bob", secrets_["bob"], client=("10.0.0.3", 1))
    assert bob.get("/api/queue").status_code == 200
    people.remove("bob")
    assert bob.get("/api/queue").status_code == 401


def test_the_pages_own_polls_do_not_keep_an_idle_session_alive(broker: Broker, people: People, secrets_: dict) -> None:
    clock = Clock()
    client, _ = signed_in(broker, people, "alice", secrets_["alice"], clock=clock)
    for _ in range(4):
        clock.now += IDLE / 3
        assert client.get("/api/presence").status_code in (200, 401)
    assert client.get("/api/presence").status_code == 401


def test_the_event_stream_ends_when_the_person_is_removed(broker: Broker, people: People, secrets_: dict) -> None:
    from signoff.web import app as web_app

    hold(broker)
    client, _ = signed_in(broker, people, "alice", secrets_["alice"])
    seen = 0
    with client.stream("GET", "/events") as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                seen += 1
                people.remove("alice")
    assert seen == 1 and web_app.LIVENESS_CHECK <= 1.0  # the stream closed by itself


def test_remembering_an_approval_needs_an_admin(broker: Broker, people: People, secrets_: dict) -> None:
    held_id = hold(broker)
    client, csrf = signed_in(broker, people, "alice", secrets_["alice"])
    refused = post(client, "/api/decide", {"id": held_id, "approve": True, "remember": "tool"}, csrf)
    assert refused.status_code == 403 and "admin" in refused.json()["error"] and broker.remembered() == []
    boss = people.add("erin", ["approver", "admin"], PASSWORD)
    admin, acsrf = signed_in(broker, people, "erin", boss, client=("10.0.0.5", 1))
    assert post(admin, "/api/decide", {"id": held_id, "approve": True, "remember": "tool"}, acsrf).status_code == 200
    assert broker.remembered()[0].created_by == "user:erin"


def test_sign_out_ends_the_session(broker: Broker, people: People, secrets_: dict) -> None:
    client, csrf = signed_in(broker, people, "alice", secrets_["alice"])
    stolen = client.cookies.get("signoff_session")
    assert client.post("/signout", headers={"Origin": ORIGIN, "X-CSRF-Token": csrf}).status_code == 200
    other = page(broker, people)
    other.cookies.set("signoff_session", stolen)
    assert other.get("/api/queue").status_code == 401


def test_each_held_call_shows_who_else_is_looking(broker: Broker, people: People, secrets_: dict) -> None:
    held_id = hold(broker)
    alice, _ = signed_in(broker, people, "alice", secrets_["alice"])
    bob = page(broker, people, client=("10.0.0.4", 1))
    bob.app.state.team = alice.app.state.team  # one page process: both people on it
    assert sign_in(bob, "bob", secrets_["bob"]).status_code == 200
    assert alice.get("/api/presence", params={"ids": held_id}).json()["viewers"][held_id] == ["alice"]
    seen = bob.get("/api/presence", params={"ids": held_id}).json()
    assert seen == {"me": "bob", "viewers": {held_id: ["alice", "bob"]}}


def test_forwarded_headers_count_only_from_a_trusted_proxy(broker: Broker, people: People, secrets_: dict) -> None:
    spoof = {"Host": "evil.example", "X-Forwarded-Host": "127.0.0.1:8765", "X-Forwarded-Proto": "https"}
    untrusted = page(broker, people, public_url=PUBLIC, trusted=["10.0.0.1"], client=("10.6.6.6", 1))
    assert untrusted.get("/signin", headers=spoof).status_code == 421  # the real Host is judged
    assert untrusted.get("/signin", headers={"X-Forwarded-Host": "approvals.example.com"}).status_code == 200
    proxy = page(broker, people, public_url=PUBLIC, trusted=["10.0.0.0/24"], client=("10.0.0.1", 1))
    behind = {
        "Host": "127.0.0.1:9999",
        "X-Forwarded-Host": "approvals.example.com",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "203.0.113.7",
    }
    assert proxy.get("/signin", headers=behind).status_code == 200
    assert proxy.get("/signin", headers={**behind, "X-Forwarded-Host": "evil.example"}).status_code == 421
    answer = proxy.post(
        "/signin",
        content=json.dumps({"name": "alice", "password": PASSWORD, "totp": fresh_code(secrets_["alice"])}),
        headers={**behind, "Content-Type": "application/json", "Origin": PUBLIC, "X-CSRF-Token": csrf_of(proxy)},
    )
    assert answer.status_code == 200 and "secure" in answer.headers["set-cookie"].lower()


def signoff_cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"SIGNOFF_TOKEN": token} if token else {})}
    env.pop("SIGNOFF_TOKEN", None) if token is None else None
    return subprocess.run([sys.executable, "-m", "signoff", *args], capture_output=True, text=True, env=env, timeout=60)


def test_the_cli_decides_as_the_person_its_token_names_until_they_are_removed(
    broker: Broker, people: People, secrets_: dict
) -> None:
    first, second = hold(broker, path="/a"), hold(broker, path="/b")
    token = people.new_token("alice")
    no_token = signoff_cli("approve", first)
    assert no_token.returncode == 5 and "token" in no_token.stderr
    done = signoff_cli("approve", first, "--token", token)
    assert done.returncode == 0, done.stderr
    assert broker.get(first).decided_by == "user:alice"
    bobs = people.new_token("bob")
    refused = signoff_cli("deny", second, token=bobs)
    assert refused.returncode == 5 and "approver" in refused.stderr
    watch = signoff_cli("watch")  # the console has no person to name: refused in team mode
    assert watch.returncode == 5 and "team mode" in watch.stderr
    people.remove("alice")
    after = signoff_cli("approve", second, "--token", token)
    assert after.returncode == 5 and "names nobody" in after.stderr
    assert broker.get(second).status == "pending"
