"""The approval page under load and a hostile model: reads never write, an idle page is pushed
nothing, held rows stay small whatever the session did, and risk is the tool's own."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from signoff import paths
from signoff.approvals.broker import Broker
from signoff.model import Decision, ToolCall, Verdict
from signoff.policy import risk
from signoff.web import app as web_app
from test_web import hold, logged_in, post

ASK = Decision(Verdict.ASK, "needs approval", "hitl_policies[0]", 300)


@pytest.fixture
def broker() -> Broker:
    return Broker()


def db_state() -> tuple[int, int, int]:
    """(data_version seen by a fresh connection, db file size, WAL size): any commit moves one."""
    db = paths.db_path()
    wal = Path(f"{db}-wal")
    conn = sqlite3.connect(db)
    try:
        version = (
            conn.execute("SELECT count(*) FROM audit").fetchone()[0] + conn.execute("SELECT count(*) FROM held").fetchone()[0]
        )
    finally:
        conn.close()
    return version, db.stat().st_size, wal.stat().st_size if wal.exists() else 0


def test_reading_the_queue_writes_nothing(broker: Broker) -> None:
    for i in range(5):
        hold(broker, path=f"/p{i}")
    client, _ = logged_in(broker)
    client.get("/api/queue")  # first read: connections opened
    watcher = Broker()  # another process's view: its change token moves on any commit by anyone
    before_tokens, before = (watcher.store.change_token(), broker.store.change_token()), db_state()
    for _ in range(50):
        assert len(client.get("/api/queue").json()["pending"]) == 5
    assert db_state() == before
    assert (watcher.store.change_token(), broker.store.change_token()) == before_tokens


def test_an_expired_retry_call_is_timed_out_by_the_read_that_sees_it(broker: Broker) -> None:
    held_id = broker.issue_retry(ToolCall("fs", "write_file", {"path": "/a"}), Decision(Verdict.ASK, "x", None, -1))
    client, _ = logged_in(broker)
    assert client.get("/api/queue").json()["pending"] == []
    assert broker.get(held_id).status == "timeout"


def test_an_idle_event_stream_sends_the_queue_once_then_only_heartbeats(broker: Broker, monkeypatch) -> None:
    monkeypatch.setattr(web_app, "HEARTBEAT", 1.0)
    for i in range(3):
        hold(broker, path=f"/p{i}")
    client, _ = logged_in(broker)
    events, pings = [], 0
    with client.stream("GET", "/events") as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                events.append(line)
            elif line.startswith(":"):
                pings += 1
                if pings == 2:  # two heartbeats (≥ 1 s) with no change: no second queue event
                    break
    assert events == ["event: queue"]


def test_the_stream_pushes_again_when_the_queue_changes(broker: Broker) -> None:
    hold(broker, path="/first")
    client, _ = logged_in(broker)
    seen = []
    with client.stream("GET", "/events") as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                if len(seen) == 1:
                    hold(broker, path="/second")
                else:
                    break
    assert [len(q["pending"]) for q in seen] == [1, 2]


def test_unrelated_commits_do_not_push_the_queue(broker: Broker, monkeypatch) -> None:
    """An allowed call's audit row moves the change counter but not the queue: nothing is sent."""
    monkeypatch.setattr(web_app, "HEARTBEAT", 1.0)
    from signoff.approvals.audit import AuditLog

    hold(broker)
    client, _ = logged_in(broker)
    events = []
    with client.stream("GET", "/events") as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                events.append(line)
                for i in range(20):
                    AuditLog(broker.store).append(ToolCall("fs", "read_file", {"path": f"/r{i}"}), "allowed")
            elif line.startswith(":"):
                break
    assert events == ["event: queue"]


def test_queue_folds_big_arguments_and_leaves_history_to_the_call_view(broker: Broker) -> None:
    big = "x" * 200_000
    history = [{"tool": "fs.read_file", "arguments": {"path": f"/r{i}", "blob": big}, "outcome": "allowed"} for i in range(30)]
    held_id = broker.issue_retry(ToolCall("fs", "write_file", {"path": "/a", "content": big}, session="s"), ASK, history=history)
    client, _ = logged_in(broker)
    queue = client.get("/api/queue")
    assert len(queue.content) < 30_000
    [item] = queue.json()["pending"]
    assert item["arguments_folded"] is True and item["arguments"]["path"] == "/a"
    assert "session_history" not in item and item["history_count"] == 20
    full = client.get(f"/api/held/{held_id}").json()
    assert full["arguments"]["content"] == big  # the call's own view has everything
    assert len(json.dumps(full["session_history"])) < 20 * 700
    assert full["session_history"][-1]["arguments"]["path"] == "/r29"


def test_a_session_with_big_arguments_stays_small_in_the_db(broker: Broker) -> None:
    """5 held calls of 100 KB each, each session remembering the calls before it."""
    size = 100_000
    history = []
    for i in range(5):
        call = ToolCall("fs", "write_file", {"path": f"/f{i}", "content": chr(97 + i) * size}, session="s")
        broker.issue_retry(call, ASK, history=list(history))
        history.append({"tool": call.qualified, "arguments": dict(call.arguments), "outcome": "held"})
    conn = sqlite3.connect(paths.db_path())
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    total = paths.db_path().stat().st_size
    copies = total / (5 * size)
    print(f"\n5 held calls x {size // 1000} KB arguments: db {total / 1e6:.2f} MB = {copies:.1f} copies per call")
    assert copies < 3.5  # the held row and its audit row: history adds only short summaries


def test_risk_comes_from_the_tools_own_annotations(broker: Broker) -> None:
    read_only = ToolCall("fs", "read_file", {"path": "/a"}, annotations={"readOnlyHint": True})
    destructive = ToolCall("fs", "delete_file", {"path": "/a"}, annotations={"destructiveHint": True, "openWorldHint": False})
    local_write = ToolCall("fs", "write_file", {"path": "/a"}, annotations={"destructiveHint": False, "openWorldHint": False})
    silent = ToolCall("web", "fetch", {"url": "https://example.com"})
    ids = {
        name: broker.issue_retry(call, ASK)
        for name, call in (("ro", read_only), ("destructive", destructive), ("local", local_write), ("silent", silent))
    }
    assert broker.get(ids["destructive"]).annotations == {"destructiveHint": True, "openWorldHint": False}
    client, _ = logged_in(broker)
    risks = {item["id"]: (item["risk"], item["risk_why"]) for item in client.get("/api/queue").json()["pending"]}
    assert risks[ids["ro"]][0] == "low" and "read-only" in risks[ids["ro"]][1]
    assert risks[ids["local"]][0] == "low"
    assert risks[ids["destructive"]][0] == "high" and "irreversible" in risks[ids["destructive"]][1]
    assert risks[ids["silent"]][0] == "critical" and "declares no hints" in risks[ids["silent"]][1]


def test_the_recognised_action_raises_risk_even_for_a_tool_claiming_to_be_harmless(broker: Broker) -> None:
    call = ToolCall("fs", "remove", {"path": "/a"}, annotations={"destructiveHint": False, "openWorldHint": False})
    held_id = broker.issue_retry(call, Decision(Verdict.ASK, "deletes", "hitl_policies[0] (file_delete)", 300))
    client, _ = logged_in(broker)
    [item] = client.get("/api/queue").json()["pending"]
    assert item["id"] == held_id and item["risk"] == "high" and "action file_delete" in item["risk_why"]


def test_risk_uses_the_held_calls_recorded_actions_when_the_label_lists_several(broker: Broker) -> None:
    from signoff.model import canonical_json

    harmless = {"destructiveHint": False, "openWorldHint": False}
    call = ToolCall("shop", "checkout", {"cart": "c1"}, annotations=harmless)
    listed = broker.issue_retry(
        call,
        Decision(Verdict.ASK, "pays", "hitl_policies[2] (purchase, payment)", 300),
        shown={"actions": canonical_json(["purchase", "payment"])},
    )
    assert broker.get(listed).actions == ("purchase", "payment")
    # the recorded actions come first, even when the label names another (or none)
    relabelled = broker.issue_retry(
        ToolCall("shop", "pay", {"cart": "c2"}, annotations=harmless),
        Decision(Verdict.ASK, "pays", "my rule", 300),
        shown={"actions": canonical_json(["payment"])},
    )
    client, _ = logged_in(broker)
    risks = {item["id"]: (item["risk"], item["risk_why"]) for item in client.get("/api/queue").json()["pending"]}
    assert risks[listed][0] == "high" and "actions purchase, payment" in risks[listed][1]
    assert risks[relabelled][0] == "high" and "action payment" in risks[relabelled][1]
    # without recorded actions, a label listing several still counts (older rows)
    assert risk.assess("hitl_policies[2] (purchase, payment)", harmless, {})[0] == "high"
    assert risk.assess("hitl_policies[2] (file_read)", harmless, {})[0] == "low"


def test_proxies_record_the_policy_they_run_and_the_policies_page_shows_it(broker: Broker, tmp_path: Path) -> None:
    from signoff.runner import note_proxy

    note_proxy(broker, "balanced", "abc123def4567890", ("git",))
    client, _ = logged_in(broker)
    view = client.get("/api/policy").json()
    [running] = view["running"]
    assert running["source"] == "balanced" and running["kind"] == "preset" and running["servers"] == ["git"]
    assert view["path"] == "preset:balanced" and view["editable"] is False and view["rules"]
    assert view["text"].startswith("#") or "hitl_policies" in view["text"]


def test_policy_rules_come_with_yaml_and_cel_errors_in_plain_words(broker: Broker, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("hitl_policies:\n  - action: database_write\n    tables: [users, orders]\n")
    client, csrf = logged_in(broker, policy=str(path))
    [rule] = client.get("/api/policy").json()["rules"]
    assert rule["yaml"] == "action: database_write\ntables:\n- users\n- orders"
    r = post(client, "/api/policy", {"rule": {"tool": "pay.*", "condition": "args.amount = 3"}}, csrf)
    assert r.status_code == 400
    assert "'=' is not understood" in r.json()["error"] and "use ==" in r.json()["error"]
    assert "mismatched" not in r.json()["error"] and "token recognition" not in r.json()["error"]
    r = post(client, "/api/policy", {"rule": {"tool": "pay.*", "condition": "args.amount >"}}, r.json()["csrf"])
    assert "ends too early" in r.json()["error"]


def test_healthz_names_the_home_without_revealing_it(broker: Broker, signoff_home: Path) -> None:
    from signoff.web.security import home_id

    client, _ = logged_in(broker)
    answer = client.get("/healthz").text
    assert answer == f"signoff ui home={home_id()}" and str(signoff_home) not in answer


def test_the_idle_page_benchmark_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SIGNOFF_HOME": str(tmp_path / "bench")}
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_page_idle.py"), "--smoke"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sent while idle" in done.stdout and "page process CPU" in done.stdout


@pytest.mark.anyio
async def test_a_held_call_through_the_real_proxy_carries_the_tools_annotations(tmp_path: Path) -> None:
    from conftest import connect, fake_server, through_signoff

    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*.write_file'\n    hold: retry\n")
    async with connect(through_signoff(fake_server(), "--policy", str(policy))) as client:
        await client.list_tools()  # as clients do before calling (the proxy's own prefetch may still be running)
        result = await client.call_tool("write_file", {"path": str(tmp_path / "x"), "content": "y"})
    assert result.is_error and "held for the user's approval" in result.content[0].text
    [held] = Broker().store.list_held("pending")
    assert held.annotations == {"readOnlyHint": False, "destructiveHint": True}
    level, why = risk.assess(held.rule, held.annotations, held.arguments)
    assert level == "critical" and "irreversible" in why and "declares no hints" not in why


@pytest.mark.anyio
async def test_the_policies_page_follows_a_running_proxys_reload(tmp_path: Path, broker: Broker) -> None:
    from conftest import connect, fake_server, through_signoff

    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*.write_file'\n")
    client, _ = logged_in(broker, policy=str(policy))
    async with connect(
        through_signoff(fake_server(), "--policy", str(policy)), env={"SIGNOFF_POLICY_RELOAD_INTERVAL": "0"}
    ) as session:
        await session.call_tool("echo", {"text": "hi"})
        [before] = client.get("/api/policy").json()["running"]
        assert before["source"] == str(policy) and before["kind"] == "file" and before["same_as_shown"] is True
        policy.write_text("hitl_policies:\n  - tool: '*.write_file'\n  - tool: '*.delete_file'\n")
        await session.call_tool("echo", {"text": "again"})  # the proxy reloads on its call path
        [after] = client.get("/api/policy").json()["running"]
    assert after["hash"] != before["hash"] and after["same_as_shown"] is True


def test_a_flooded_queue_is_pushed_at_a_bounded_rate(broker: Broker, monkeypatch) -> None:
    """A model making held calls as fast as it can: pushes are spaced by their size."""
    import time

    monkeypatch.setattr(web_app, "PUSH_BYTES_PER_SECOND", 20_000)
    for i in range(5):
        hold(broker, path=f"/p{i}", content="x" * 2000)
    client, _ = logged_in(broker)
    sizes, times = [], []
    with client.stream("GET", "/events") as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                sizes.append(len(line))
                times.append(time.monotonic())
                if len(sizes) == 2:
                    break
                for i in range(20):  # the flood, right after the first push
                    hold(broker, path=f"/flood{i}")
    assert times[1] - times[0] >= sizes[0] / 20_000 * 0.9  # at most ~20 KB/s here


def test_similar_past_calls_and_statistics_are_counted_by_the_store(broker: Broker) -> None:
    client, csrf = logged_in(broker)
    for path, approve in (("/same", True), ("/other", False), ("/same", True)):
        r = post(client, "/api/decide", {"id": hold(broker, path=path), "approve": approve}, csrf)
        csrf = r.json()["csrf"]
    held_id = hold(broker, path="/same")
    similar = client.get(f"/api/held/{held_id}").json()["similar"]
    assert [(s["decision"], s["same_arguments"]) for s in similar] == [("approved", True), ("denied", False), ("approved", True)]
    [stats] = client.get("/api/stats").json()["tools"]
    assert (stats["held"], stats["approved"], stats["denied"]) == (4, 2, 1)


def test_the_history_filter_offers_every_audit_decision_outcomes_included(broker: Broker) -> None:
    import re

    from signoff.approvals.audit import DECISIONS

    client, _ = logged_in(broker)
    page = client.get("/").text
    select = page[page.index('<select name="decision">') :]
    offered = re.findall(r"<option>([a-z_]+)</option>", select[: select.index("</select>")])
    assert offered == list(DECISIONS) and "forwarded" in offered and "not_run" in offered
