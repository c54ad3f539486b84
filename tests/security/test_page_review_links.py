"""Per-call review links (what notifications carry) attacked: replay, expiry, forgery, reaching
another call, the policy page, the kill switch, or a page serving another SIGNOFF_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from signoff.approvals.broker import Broker
from signoff.web import links
from signoff.web.app import UI, create_app
from signoff.web.security import Guard
from test_web import ORIGIN, TOKEN, hold

PUBLIC = "http://laptop.tail1234.ts.net:8765"


@pytest.fixture
def broker() -> Broker:
    return Broker()


def phone(broker: Broker, base: str = ORIGIN, public_url: str | None = None) -> TestClient:
    """A browser with no master token (a phone following a notification)."""
    guard = Guard(TOKEN, "127.0.0.1", 8765, public_url=public_url)
    return TestClient(create_app(UI(broker, guard)), base_url=base, follow_redirects=False)


def redeem(client: TestClient, link: str, origin: str = ORIGIN):
    path = link.split("://", 1)[1].split("/", 1)[1]
    return client.post(f"/{path}", headers={"Origin": origin})


def csrf_of(client: TestClient) -> str:
    page = client.get("/")
    assert page.status_code == 200
    return page.text.split('name="csrf" content="')[1].split('"')[0]


def decide(client: TestClient, held_id: str, csrf: str, approve: bool = True, origin: str = ORIGIN, **extra):
    return client.post(
        "/api/decide",
        content=json.dumps({"id": held_id, "approve": approve, **extra}),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf, "Origin": origin},
    )


def test_a_link_opens_its_call_once_and_only_its_call(broker: Broker) -> None:
    mine, other = hold(broker, path="/mine"), hold(broker, path="/other")
    link = links.review_link(ORIGIN, mine)
    client = phone(broker)
    assert client.get("/api/queue").status_code == 401  # nothing before the link is spent
    landing = client.get("/" + link.split("/", 3)[3])
    assert landing.status_code == 200 and "Open the call" in landing.text and "set-cookie" not in landing.headers
    opened = redeem(client, link)
    assert opened.status_code == 303 and opened.headers["location"] == f"/#{mine}"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and TOKEN not in cookie

    queue = client.get("/api/queue").json()
    assert [h["id"] for h in queue["pending"]] == [mine] and queue["scope"] == mine
    assert client.get(f"/api/held/{mine}").json()["id"] == mine
    assert "similar" not in client.get(f"/api/held/{mine}").json()  # other calls' decisions stay hidden
    assert client.get(f"/api/held/{other}").status_code == 403
    for url in ("/api/audit", "/api/stats", "/api/policy"):
        assert client.get(url).status_code == 403, url

    csrf = csrf_of(client)
    refused = decide(client, other, csrf)
    assert refused.status_code == 403 and broker.get(other).status == "pending"
    kill = client.post(
        "/api/kill",
        content=json.dumps({"on": True}),
        headers={"Content-Type": "application/json", "X-CSRF-Token": refused.json()["csrf"], "Origin": ORIGIN},
    )
    assert kill.status_code == 403 and not broker.kill_state().on
    edit = client.post(
        "/api/policy",
        content=json.dumps({"remove": 0}),
        headers={"Content-Type": "application/json", "X-CSRF-Token": kill.json()["csrf"], "Origin": ORIGIN},
    )
    assert edit.status_code == 403
    ok = decide(client, mine, edit.json()["csrf"], remember="tool")
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    assert broker.remembered() == []  # a one-call link cannot widen itself into a standing rule
    after = client.get("/api/queue").json()
    assert after["pending"] == [] and after["scoped_outcome"]["status"] == "approved"

    again = phone(broker)
    second = redeem(again, link)
    assert second.status_code == 403 and "already used" in second.text
    assert again.get("/api/queue").status_code == 401


def test_a_spent_link_stays_spent_after_the_page_restarts(broker: Broker) -> None:
    held_id = hold(broker)
    link = links.review_link(ORIGIN, held_id)
    assert redeem(phone(broker), link).status_code == 303
    assert redeem(phone(broker), link).status_code == 403  # a new UI object: the spent list is on disk


def test_an_expired_link_is_refused(broker: Broker) -> None:
    held_id = hold(broker)
    token = links.review_token(links.link_key(), held_id, ttl=-1)
    response = redeem(phone(broker), f"{ORIGIN}/r/{token}")
    assert response.status_code == 403 and "expired" in response.text


def test_a_forged_or_retargeted_link_is_refused(broker: Broker) -> None:
    mine, other = hold(broker, path="/mine"), hold(broker, path="/other")
    token = links.review_token(links.link_key(), mine)
    payload, mac = token.split(".")
    import base64

    fields = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split("|")
    fields[0] = other
    retargeted = base64.urlsafe_b64encode("|".join(fields).encode()).decode().rstrip("=") + "." + mac
    foreign = links.review_token(b"another signoff's key", mine)
    for bad in (retargeted, foreign, "garbage", "a.b", token + "x"):
        assert redeem(phone(broker), f"{ORIGIN}/r/{bad}").status_code == 403, bad
    # a call cookie cannot be minted from a review token either (different purpose in the MAC)
    client = phone(broker)
    client.cookies.set("signoff_call", token)
    assert client.get("/api/queue").status_code == 401


def test_redeeming_needs_a_same_origin_post(broker: Broker) -> None:
    held_id = hold(broker)
    link = links.review_link(ORIGIN, held_id)
    client = phone(broker)
    assert redeem(client, link, origin="http://evil.example").status_code == 403
    path = "/" + link.split("/", 3)[3]
    assert client.post(path).status_code == 403  # no Origin, no Referer
    assert redeem(client, link).status_code == 303  # the refused attempts did not spend it


def test_the_public_url_is_accepted_only_when_configured(broker: Broker) -> None:
    held_id = hold(broker)
    link = links.review_link(PUBLIC, held_id)
    assert link.startswith(f"{PUBLIC}/r/")
    assert phone(broker, base=PUBLIC).get("/" + link.split("/", 3)[3]).status_code == 421
    client = phone(broker, base=PUBLIC, public_url=PUBLIC)
    assert redeem(client, link, origin=PUBLIC).status_code == 303
    assert decide(client, held_id, csrf_of(client), origin=PUBLIC).status_code == 200


def test_run_ui_does_not_adopt_a_page_serving_another_home(tmp_path: Path, monkeypatch) -> None:
    """A foreign page answers healthz on the port: ensure_running starts ours on the next one."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from signoff.web import server

    class Foreign(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"signoff ui home=0123456789abcdef"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    foreign = HTTPServer(("127.0.0.1", 0), Foreign)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    port = foreign.server_address[1]
    started = []
    monkeypatch.setattr(
        server.subprocess, "Popen", lambda command, **kw: started.append(command) or type("P", (), {"pid": 4242})()
    )
    try:
        assert not server.running(port)
        url = server.ensure_running(port)
    finally:
        foreign.shutdown()
    assert f":{port}/" not in url and started and started[0][started[0].index("--port") + 1] != str(port)


def test_the_link_key_is_one_private_file_even_when_processes_race(signoff_home: Path) -> None:
    import os
    import subprocess
    import sys

    code = "from signoff.web.links import link_key; print(link_key().decode())"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(6)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and keys == {links.link_key().decode()}
    key_file = signoff_home / links.KEY_FILE
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert sorted(os.listdir(signoff_home)) == [links.KEY_FILE]  # no temporary files left behind
