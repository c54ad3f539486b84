"""The approval page's routes and every security rule, through Starlette's TestClient."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
import pytest
from starlette.testclient import TestClient

from signoff.approvals.broker import Broker
from signoff.model import Decision, ToolCall, Verdict
from signoff.web.app import UI, create_app
from signoff.web.security import Guard

TOKEN = "test-token-123"
ORIGIN = "http://127.0.0.1:8765"


def hold(broker: Broker, tool: str = "write_file", **args) -> str:
    """A pending held call in the shared queue (retry mode: no waiting task needed)."""
    call = ToolCall("filesystem", tool, args or {"path": "/tmp/x", "content": "<script>alert(1)</script>"}, session="s1")
    return broker.issue_retry(
        call, Decision(Verdict.ASK, "writing files needs approval", "hitl_policies[0] (file_write)", 300), "hash"
    )


@pytest.fixture
def broker() -> Broker:
    return Broker()


def make_client(broker: Broker, *, totp: str | None = None, policy: str | None = None) -> TestClient:
    guard = Guard(TOKEN, "127.0.0.1", 8765, totp_secret=totp)
    client = TestClient(create_app(UI(broker, guard, policy_path=policy)), base_url=ORIGIN, follow_redirects=False)
    return client


def logged_in(broker: Broker, **kwargs) -> tuple[TestClient, str]:
    client = make_client(broker, **kwargs)
    first = client.get(f"/?token={TOKEN}")
    assert first.status_code == 303 and first.headers["location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    csrf = page.text.split('name="csrf" content="')[1].split('"')[0]
    return client, csrf


def post(client: TestClient, url: str, body: dict, csrf: str | None, origin: str | None = ORIGIN):
    headers = {"Content-Type": "application/json"}
    if csrf:
        headers["X-CSRF-Token"] = csrf
    if origin:
        headers["Origin"] = origin
    return client.post(url, content=json.dumps(body), headers=headers)


def test_no_token_or_bad_token_is_refused(broker: Broker) -> None:
    client = make_client(broker)
    assert client.get("/").status_code == 401
    assert client.get("/api/queue").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    client.cookies.set("signoff_token", "wrong")
    assert client.get("/api/queue").status_code == 401


def test_token_becomes_a_strict_httponly_cookie(broker: Broker) -> None:
    client = make_client(broker)
    response = client.get(f"/?token={TOKEN}")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN in cookie
    assert client.get("/api/queue").status_code == 200


def test_foreign_host_header_is_refused(broker: Broker) -> None:
    client, _ = logged_in(broker)
    assert client.get("/api/queue", headers={"Host": "evil.example:8765"}).status_code == 421
    assert client.get("/", headers={"Host": "attacker.com"}).status_code == 421


def test_a_page_on_all_interfaces_answers_only_to_the_names_it_was_given(broker: Broker) -> None:
    """`signoff ui --host 0.0.0.0`: the CLI passes this machine's names; any other Host is refused
    (DNS rebinding), and without names only loopback is accepted (fail closed)."""
    guard = Guard(TOKEN, "0.0.0.0", 8765, own_names={"10.1.2.3", "fe80::1"})
    assert {"10.1.2.3:8765", "[fe80::1]:8765", "127.0.0.1:8765", "localhost:8765"} <= guard.allowed_hosts
    client = TestClient(create_app(UI(broker, guard)), base_url="http://10.1.2.3:8765", follow_redirects=False)
    assert client.get(f"/?token={TOKEN}").status_code == 303
    assert client.get("/api/queue", headers={"Host": "10.9.9.9:8765"}).status_code == 421
    bare = Guard(TOKEN, "0.0.0.0", 8765)
    assert "10.1.2.3:8765" not in bare.allowed_hosts and "127.0.0.1:8765" in bare.allowed_hosts


def test_page_has_no_inline_script_and_a_strict_csp(broker: Broker) -> None:
    client, _ = logged_in(broker)
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text.replace('<script src="/static/app.js" defer></script>', "")
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


def test_queue_shows_held_calls_with_risk_and_context(broker: Broker) -> None:
    held_id = hold(broker)
    client, _ = logged_in(broker)
    queue = client.get("/api/queue").json()
    [item] = queue["pending"]
    assert item["id"] == held_id and item["qualified"] == "filesystem.write_file"
    assert item["arguments"]["content"] == "<script>alert(1)</script>"  # data, rendered with textContent
    assert item["risk"] in ("low", "medium", "high", "critical") and item["reason"] == "writing files needs approval"
    detail = client.get(f"/api/held/{held_id}").json()
    assert detail["similar"] == []
    assert client.get("/api/held/h-nope").status_code == 404


def test_decide_needs_same_origin_and_a_fresh_csrf_token(broker: Broker) -> None:
    held_id = hold(broker)
    client, csrf = logged_in(broker)
    assert post(client, "/api/decide", {"id": held_id, "approve": True}, csrf, origin=None).status_code == 403
    assert post(client, "/api/decide", {"id": held_id, "approve": True}, csrf, origin="http://evil.example").status_code == 403
    assert post(client, "/api/decide", {"id": held_id, "approve": True}, None).status_code == 403
    assert post(client, "/api/decide", {"id": held_id, "approve": True}, "forged").status_code == 403
    ok = post(client, "/api/decide", {"id": held_id, "approve": True, "reason": "fine"}, csrf)
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    assert post(client, "/api/decide", {"id": held_id, "approve": False}, csrf).status_code == 403  # replayed token
    again = post(client, "/api/decide", {"id": held_id, "approve": False}, ok.json()["csrf"])
    assert again.status_code == 409 and "first decision wins" in again.json()["error"]
    row = broker.get(held_id)
    assert row.channel == "web" and row.decision_reason == "fine"


def test_get_cannot_change_anything(broker: Broker) -> None:
    client, _ = logged_in(broker)
    assert client.get("/api/decide").status_code == 405
    assert client.get("/api/kill").status_code == 405


def test_deny_with_reason_edit_arguments_and_remember(broker: Broker) -> None:
    client, csrf = logged_in(broker)
    a, b, c = hold(broker, path="/a"), hold(broker, path="/b"), hold(broker, path="/c")
    r = post(client, "/api/decide", {"id": a, "approve": False, "reason": "not that file"}, csrf)
    assert r.status_code == 200 and broker.get(a).decision_reason == "not that file"
    r = post(client, "/api/decide", {"id": b, "approve": True, "arguments": [1]}, r.json()["csrf"])
    assert r.status_code == 400
    r = post(client, "/api/decide", {"id": b, "approve": True, "arguments": {"path": "/safe"}}, r.json()["csrf"])
    assert r.status_code == 200 and broker.get(b).edited_arguments == {"path": "/safe"}
    r = post(client, "/api/decide", {"id": c, "approve": True, "remember": "tool"}, r.json()["csrf"])
    assert r.status_code == 200 and broker.remembered()[0].tool == "write_file"
    assert post(client, "/api/decide", {"id": "h-none", "approve": True}, r.json()["csrf"]).status_code == 404


def test_totp_is_required_and_never_accepted_twice(broker: Broker) -> None:
    secret = pyotp.random_base32()
    held_id = hold(broker)
    client, csrf = logged_in(broker, totp=secret)
    bad = post(client, "/api/decide", {"id": held_id, "approve": True, "totp": "000000"}, csrf)
    assert bad.status_code == 403 and "TOTP" in bad.json()["error"]
    page = client.get("/")
    csrf = page.text.split('name="csrf" content="')[1].split('"')[0]
    code = pyotp.TOTP(secret).now()
    ok = post(client, "/api/decide", {"id": held_id, "approve": True, "totp": code}, csrf)
    assert ok.status_code == 200
    other = hold(broker, path="/other")
    replay = post(client, "/api/decide", {"id": other, "approve": True, "totp": code}, ok.json()["csrf"])
    assert replay.status_code == 403


def test_kill_switch_button(broker: Broker) -> None:
    held_id = hold(broker)
    client, csrf = logged_in(broker)
    r = post(client, "/api/kill", {"on": True, "reason": "stop everything"}, csrf)
    assert r.status_code == 200 and r.json()["kill"]["on"] is True
    assert broker.kill_state().on and broker.get(held_id).status == "killed"
    r = post(client, "/api/kill", {"on": False}, r.json()["csrf"])
    assert r.status_code == 200 and not broker.kill_state().on


def test_history_and_always_approved_suggestions(broker: Broker) -> None:
    client, csrf = logged_in(broker)
    for i in range(3):
        held_id = hold(broker, path=f"/p{i}")
        r = post(client, "/api/decide", {"id": held_id, "approve": True}, csrf)
        csrf = r.json()["csrf"]
    rows = client.get("/api/audit", params={"decision": "approved"}).json()["rows"]
    assert len(rows) == 3 and rows[0]["channel"] == "web"
    assert client.get("/api/audit", params={"tool": "nomatch.*"}).json()["rows"] == []
    [stats] = client.get("/api/stats").json()["tools"]
    assert stats["approved"] == 3 and "consider" in stats["suggestion"]


def test_policy_page_adds_and_removes_rules_keeping_comments(broker: Broker, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("# team policy\nhitl_policies:\n  - action: file_delete  # always\n    scope: all\n")
    client, csrf = logged_in(broker, policy=str(path))
    assert client.get("/api/policy").json()["rules"][0]["summary"] == "action: file_delete, scope: all"
    r = post(client, "/api/policy", {"rule": {"tool": "git.git_push", "reason": "pushes"}}, csrf)
    assert r.status_code == 200 and "# team policy" in path.read_text() and "# always" in path.read_text()
    r2 = post(client, "/api/policy", {"rule": {"tool": "x.y", "decision": "maybe"}}, r.json()["csrf"])
    assert r2.status_code == 400 and "decision" in r2.json()["error"]
    r3 = post(client, "/api/policy", {"remove": 0}, r2.json()["csrf"])
    assert r3.status_code == 200
    text = path.read_text()
    assert "file_delete" not in text and "git.git_push" in text and "# team policy" in text


def test_events_stream_pushes_the_queue(broker: Broker) -> None:
    held_id = hold(broker)
    client, _ = logged_in(broker)
    with client.stream("GET", "/events") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:"):
                assert held_id in line
                break


def test_edited_arguments_are_checked_against_the_tools_input_schema(broker: Broker) -> None:
    schema = {
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    }
    call = ToolCall("filesystem", "write_file", {"path": "/a", "content": "x"}, input_schema=schema)
    held_id = broker.issue_retry(call, Decision(Verdict.ASK, "writes", None, 300), "hash")
    client, csrf = logged_in(broker)
    assert client.get("/api/queue").json()["pending"][0]["input_schema"] == schema
    r = post(client, "/api/decide", {"id": held_id, "approve": True, "arguments": {"path": 7, "content": "x"}}, csrf)
    assert r.status_code == 400 and "path: 7 is not of type 'string'" in r.json()["error"]
    r = post(client, "/api/decide", {"id": held_id, "approve": True, "arguments": {"path": "/b"}}, r.json()["csrf"])
    assert r.status_code == 400 and "'content' is a required property" in r.json()["error"]
    r = post(
        client, "/api/decide", {"id": held_id, "approve": True, "arguments": {"path": "/b", "content": "y"}}, r.json()["csrf"]
    )
    assert r.status_code == 200 and broker.get(held_id).edited_arguments == {"path": "/b", "content": "y"}
