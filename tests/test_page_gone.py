"""The page shows a held call nobody waits for any more as such (issue #12.4).

A real `signoff run` holds a call; kill -9 of that proxy must not make the call silently vanish
from the page, nor let a click approve it: the page greys it with the plain reason ("proxy
gone") for a minute, and a decision attempted on it answers with that reason.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from held_calls import WAIT, RawClient, decisions, held_call
from signoff.approvals.broker import Broker
from signoff.approvals.store import Resolution
from signoff.model import Decision, ToolCall, Verdict
from signoff.web import app as web_app
from test_web import logged_in, post

ASK = Decision(Verdict.ASK, "needs approval", "hitl_policies[0]", 300)


@pytest.mark.e2e
def test_a_dead_proxys_call_is_refused_with_the_plain_reason_and_shown_as_gone(tmp_path: Path) -> None:
    broker = Broker()
    proxy = RawClient(tmp_path)
    try:
        proxy.call(1, "echo", {"text": "rm -rf /"})
        held = held_call(broker)
        client, csrf = logged_in(broker)
        [shown] = client.get("/api/queue").json()["pending"]
        assert shown["id"] == held.id
        os.kill(proxy.proc.pid, signal.SIGKILL)
        proxy.proc.wait(WAIT)
        # the person clicks Approve on the card still on screen
        r = post(client, "/api/decide", {"id": held.id, "approve": True}, csrf)
    finally:
        proxy.close()
    assert r.status_code == 410
    answer = r.json()
    assert answer["error"].startswith(f"{held.id} ({held.qualified}): proxy gone — cannot be approved"), answer
    assert answer["gone"]["words"] == "proxy gone" and answer["gone"]["status"] == "abandoned"
    assert decisions(held.id) == ["held", "abandoned"]  # no approval was recorded
    queue = client.get("/api/queue").json()
    assert queue["pending"] == []
    [gone] = queue["gone"]
    assert gone["id"] == held.id and gone["words"] == "proxy gone" and "gone" in gone["reason"]
    assert gone["until"] >= queue["now"] + web_app.GONE_SECONDS - 5


@pytest.mark.parametrize(
    ("status", "words"),
    [("expired", "client stopped waiting"), ("withdrawn", "withdrawn by the client"), ("abandoned", "proxy gone")],
)
def test_each_way_of_going_is_named_in_plain_words_and_leaves_the_page_after_a_minute(
    broker: Broker, status: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held_id = broker.issue_retry(ToolCall("fs", "write_file", {"path": "/a"}), ASK)
    other = broker.issue_retry(ToolCall("fs", "write_file", {"path": "/b"}), ASK)
    broker.store.resolve(held_id, Resolution(status, "signoff", "client", "nobody waits"))
    broker.decide(other, False, reason="no")  # a person's decision is not a "gone" call
    client, csrf = logged_in(broker)
    queue = client.get("/api/queue").json()
    assert [g["id"] for g in queue["gone"]] == [held_id]
    assert queue["gone"][0]["words"] == words
    assert queue["gone"][0]["line"] == f"{held_id} (fs.write_file): {words} — cannot be approved"
    r = post(client, "/api/decide", {"id": held_id, "approve": True}, csrf)
    assert r.status_code == 410 and words in r.json()["error"] and "nobody waits" in r.json()["error"]
    monkeypatch.setattr(web_app, "GONE_SECONDS", -1.0)  # a minute later
    assert client.get("/api/queue").json()["gone"] == []


def test_a_review_link_sees_only_its_own_gone_call(broker: Broker) -> None:
    from signoff.web.app import UI, Access
    from signoff.web.security import Guard

    mine = broker.issue_retry(ToolCall("fs", "write_file", {"path": "/a"}), ASK)
    theirs = broker.issue_retry(ToolCall("fs", "write_file", {"path": "/b"}), ASK)
    for held_id in (mine, theirs):
        broker.store.resolve(held_id, Resolution("expired", "signoff", "client", "timed out"))
    ui = UI(broker, Guard("t" * 32, "127.0.0.1", 8765))
    assert [g["id"] for g in ui.queue(Access(mine))["gone"]] == [mine]


@pytest.fixture
def broker() -> Broker:
    return Broker()
