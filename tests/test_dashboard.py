"""The page as a team dashboard (web/dashboard.py): the queue, its event stream and the history
narrowed by machine, agent and server (exact values, never patterns; hostile names stay data),
and the list of proxies connected to the store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import anyio
import pytest

from signoff.approvals.broker import Broker
from signoff.approvals.liveness import ProxyLease, lease_dir
from signoff.config import IdentityStamp
from signoff.model import Decision, Identity, ToolCall, Verdict
from signoff.runner import note_proxy
from signoff.web.app import UI, _queue_stream
from signoff.web.dashboard import Filter
from signoff.web.middleware import Access
from signoff.web.security import Guard
from test_web import TOKEN, logged_in, post

HOSTILE = "<img src=x onerror=alert(1)>\u202eevil\u200b\x00\x1b[31m"
"""An agent name as a hostile MCP client may send it (clientInfo.name): HTML, bidi, zero-width, NUL, ANSI."""


def hold(broker: Broker, machine: str, agent: str, server: str = "filesystem", **args) -> str:
    call = ToolCall(server, "write_file", args or {"path": "/tmp/x"}, session="s1", identity=Identity(machine, agent, ""))
    return broker.issue_retry(call, Decision(Verdict.ASK, "writing needs approval", "hitl_policies[0]", 300), "hash")


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def calls(broker: Broker) -> dict[str, str]:
    return {
        "m1-ci": hold(broker, "laptop-1", "ci-bot"),
        "m2-dev": hold(broker, "laptop-2", "dev"),
        "m1-dev-git": hold(broker, "laptop-1", "dev", "git"),
        "old": hold_without_identity(broker),
    }


def hold_without_identity(broker: Broker) -> str:
    call = ToolCall("filesystem", "write_file", {"path": "/tmp/y"}, session="s2")
    return broker.issue_retry(call, Decision(Verdict.ASK, "held", "r", 300), "hash")


def ids(client, **params) -> set[str]:
    response = client.get("/api/queue", params=params)
    assert response.status_code == 200, response.text
    return {h["id"] for h in response.json()["pending"]}


def test_the_queue_is_narrowed_by_exact_machine_agent_and_server(broker: Broker, calls: dict[str, str]) -> None:
    client, _ = logged_in(broker)
    assert ids(client) == set(calls.values())
    assert ids(client, agent="ci-bot") == {calls["m1-ci"]}
    assert ids(client, machine="laptop-1") == {calls["m1-ci"], calls["m1-dev-git"]}
    assert ids(client, machine="laptop-1", agent="dev") == {calls["m1-dev-git"]}
    assert ids(client, server="git") == {calls["m1-dev-git"]}
    assert ids(client, agent="") == set(calls.values())  # an empty value is no filter
    for value in ("CI-BOT", "ci-*", "ci", "ci-bot ", "*", "%", "ci-bo?", "' OR 1=1 --", "unknown"):
        assert ids(client, agent=value) == set(), value  # exact: no case folding, globs, prefixes, SQL
    state = client.get("/api/queue", params={"agent": "dev"}).json()
    assert state["facets"]["agent"] == ["ci-bot", "dev"] and state["facets"]["machine"] == ["laptop-1", "laptop-2"]
    assert state["facets"]["server"] == ["filesystem", "git"]
    assert state["hidden"] == 2 and state["filter"] == {"agent": "dev"}


def test_a_hostile_agent_name_is_matched_exactly_and_stays_data(broker: Broker, calls: dict[str, str]) -> None:
    evil = hold(broker, "laptop-1", HOSTILE)
    client, _ = logged_in(broker)
    assert ids(client, agent=HOSTILE) == {evil}
    assert ids(client, agent=HOSTILE[:5]) == set() and ids(client, agent=HOSTILE.upper()) == set()
    response = client.get("/api/queue", params={"agent": HOSTILE})
    assert response.headers["content-type"] == "application/json"
    assert HOSTILE in response.json()["facets"]["agent"]
    assert ids(client, agent="x" * 30_000) == set()  # a huge value: nothing matches, nothing breaks
    page = client.get("/", params={"agent": HOSTILE, "machine": "<script>alert(1)</script>"})
    assert page.status_code == 200 and "<img src=x" not in page.text and "<script>alert" not in page.text
    rows = client.get("/api/audit", params={"agent": HOSTILE}).json()["rows"]
    assert [r["held_id"] for r in rows] == [evil]


def test_the_event_stream_pushes_only_the_filtered_queue(broker: Broker, calls: dict[str, str]) -> None:
    ui = UI(broker, Guard(TOKEN, "127.0.0.1", 8765))

    async def first(only: Filter) -> dict:
        stream = _queue_stream(ui, Access(), None, only)
        try:
            with anyio.fail_after(10):
                return json.loads((await stream.__anext__())["data"])
        finally:
            await stream.aclose()

    narrowed = anyio.run(first, Filter(agent="ci-bot"))
    assert [h["id"] for h in narrowed["pending"]] == [calls["m1-ci"]]
    assert anyio.run(first, Filter(machine="nowhere"))["pending"] == []
    assert len(anyio.run(first, Filter())["pending"]) == 4


def test_a_review_link_sees_only_its_own_calls_values(broker: Broker, calls: dict[str, str]) -> None:
    note_proxy(broker, "balanced", "abc", ("secret-server",), IdentityStamp({"machine": "hidden-box", "agent": "a"}))
    ui = UI(broker, Guard(TOKEN, "127.0.0.1", 8765))
    scoped = ui.queue(Access(call=calls["m2-dev"]))
    assert scoped["facets"] == {"machine": ["laptop-2"], "agent": ["dev"], "server": ["filesystem"]}
    assert ui.queue(Access(call=calls["m2-dev"]), Filter(agent="ci-bot"))["pending"] == []
    full = ui.queue(Access())["facets"]
    assert "hidden-box" in full["machine"] and "secret-server" in full["server"]  # the owner sees the proxies' too


def test_the_history_is_narrowed_by_machine_agent_server_and_person(broker: Broker, calls: dict[str, str]) -> None:
    client, csrf = logged_in(broker)
    for key in ("m1-ci", "m2-dev"):
        assert post(client, "/api/decide", {"id": calls[key], "approve": key == "m1-ci"}, csrf).status_code == 200
        csrf = client.get("/").text.split('name="csrf" content="')[1].split('"')[0]

    def rows(**params) -> list[tuple[str, str]]:
        response = client.get("/api/audit", params=params)
        assert response.status_code == 200
        return [(r["held_id"], r["decision"]) for r in response.json()["rows"]]

    assert rows(agent="ci-bot") == [(calls["m1-ci"], "approved"), (calls["m1-ci"], "held")]
    assert rows(machine="laptop-2", decision="denied") == [(calls["m2-dev"], "denied")]
    assert rows(server="git") == [(calls["m1-dev-git"], "held")]
    assert rows(agent="ci-bot", machine="laptop-2") == [] and rows(agent="ci*") == [] and rows(machine="LAPTOP-1") == []
    assert rows(agent="ci-bot", by="user:nobody") == []
    facets = client.get("/api/audit", params={"agent": "nobody"}).json()["facets"]
    assert facets["agent"] == ["ci-bot", "dev"] and facets["server"] == ["filesystem", "git"]
    assert facets["by"] and all(isinstance(name, str) for name in facets["by"])


def test_the_proxies_view_lists_machines_agents_servers_policy_and_marks_stale_ones(broker: Broker) -> None:
    note_proxy(
        broker,
        "balanced",
        "abcdef0123456789ff",
        ("git", "filesystem"),
        IdentityStamp({"machine": "build-1", "agent": "ci-bot", "owner": "ann"}),
    )
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    here = socket.gethostname()
    broker.store.note_proxy(
        {
            "pid": int(dead),
            "host": here,
            "source": "strict",
            "kind": "preset",
            "hash": "0" * 16,
            "servers": ["time"],
            "noted_at": 1.0,
            "machine": "old-box",
            "agent": "gone-bot",
            "owner": "",
        },
        lambda pid: True,
    )
    broker.store.note_proxy(
        {
            "pid": 4242,
            "host": "elsewhere",
            "source": "p.yaml",
            "kind": "file",
            "hash": "1" * 16,
            "servers": ["git"],
            "noted_at": 2.0,
            "machine": "remote",
            "agent": HOSTILE,
            "owner": "",
        },
        lambda pid: True,
    )
    released = ProxyLease(lease_dir(broker.store))  # a live pid whose lease was given back: a reused pid
    released.release()
    broker.store.note_proxy(
        {
            "pid": os.getppid(),
            "host": here,
            "source": "strict",
            "kind": "preset",
            "hash": "2" * 16,
            "servers": ["time"],
            "noted_at": 3.0,
            "machine": "reused",
            "agent": "a",
            "owner": "",
            "lease": str(released.path),
        },
        lambda pid: True,
    )
    client, _ = logged_in(broker)
    listed = client.get("/api/proxies").json()["proxies"]
    assert [(p["machine"], p["state"], p["stale"]) for p in listed] == [
        ("build-1", "live", False),
        ("remote", "unknown", False),
        ("old-box", "gone", True),
        ("reused", "gone", True),
    ]
    live = listed[0]
    assert live["agent"] == "ci-bot" and live["owner"] == "ann" and live["servers"] == ["git", "filesystem"]
    assert live["policy"] == "balanced" and live["policy_hash"] == "abcdef012345" and live["pid"] == os.getpid()
    assert listed[1]["agent"] == HOSTILE
    queue_facets = client.get("/api/queue").json()["facets"]
    assert "build-1" in queue_facets["machine"] and "old-box" not in queue_facets["machine"]  # stale ones are no choice


def test_team_mode_sends_a_bookmarked_view_through_sign_in_and_back(broker: Broker) -> None:
    from signoff.team.users import People
    from test_team_users import PASSWORD
    from test_team_web import page as team_page

    people = People(broker.store)
    people.add("alice", ["approver"], PASSWORD)
    client = team_page(broker, people)
    opened = client.get("/", params={"agent": "ci-bot", "machine": HOSTILE})
    assert opened.status_code == 303
    location = opened.headers["location"]
    assert location.startswith("/signin?next=%2F%3F") and "<" not in location and "/" not in location[len("/signin") :]
    assert client.get("/").headers["location"] == "/signin"  # no view: no `next`
    assert (
        client.get("/", params={"token": TOKEN, "agent": "dev"}).headers["location"] == "/signin?next=%2F%3Fagent%3Ddev"
    )  # a URL's token is never carried into the sign-in page's URL
    assert client.get(location).status_code == 200


def test_a_key_given_twice_with_different_values_keeps_nothing(broker: Broker, calls: dict[str, str]) -> None:
    client, _ = logged_in(broker)
    assert ids(client, agent=["ci-bot", "dev"]) == set()  # the page would show one, a script read the other
    assert ids(client, agent=["ci-bot", "ci-bot"]) == {calls["m1-ci"]}
    assert ids(client, agent=["", "dev"], machine="laptop-2") == {calls["m2-dev"]}
    assert client.get("/api/audit", params={"server": ["git", "filesystem"]}).json()["rows"] == []
