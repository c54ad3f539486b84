"""The team-mode test with people (issue #15): 20 `signoff run` proxies, each with its own
SIGNOFF_HOME (as on 20 machines) and its own --machine/--agent, on one PostgreSQL server; 500
held calls made at once; three people race to decide them: two signed in to one `signoff ui`
page (password + TOTP, CSRF) deciding through its HTTP API, one with `signoff approve/deny
--token` as subprocesses. Then the kill switch, set on the page, stops all 20 proxies.

Checked: every call answered exactly once at its client, with what its decision said; every held
row decided once, naming the person whose decision won; the audit trail has exactly the rows
each call should have (none lost, none doubled) and `signoff audit verify` passes. No timing is
asserted (every wait is bounded); benchmarks/bench_team.py --via page,cli times the same run.

The SQLite variant runs the same harness on one shared SIGNOFF_HOME (SQLite cannot be shared
between machines): it checks the harness and the single-machine team set-up.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port
from team_harness import BOUND, CliPerson, PagePerson, StdioProxy, answer_text, base_env, proxy_env, run_racers, start_page
from test_team_users import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROXIES, CALLS = 20, 500
SQLITE_PROXIES, SQLITE_CALLS = 4, 40
"""One SQLite file is one machine's store: 20 processes holding 500 calls at once there make some
hold writes give up on the lock (those calls are refused, fail closed): that is what PostgreSQL is for."""
PEOPLE = ("user:alice", "user:bob", "user:carol")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    """Where the proxies, the page and the CLI keep their state: one PostgreSQL schema with a home
    per process, or (SQLite) one shared home."""
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        url = server.url(server.new_schema())
        from pg_server import close_pg_stores

        request.addfinalizer(close_pg_stores)
        return {"store": url, "home": lambda name: tmp_path / name, "proxies": PROXIES, "calls": CALLS}
    return {"store": None, "home": lambda name: tmp_path / "shared-home", "proxies": SQLITE_PROXIES, "calls": SQLITE_CALLS}


def test_twenty_proxies_three_people_one_queue_then_one_kill_switch(
    team: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxies_n, calls = team["proxies"], team["calls"]
    env = lambda name: proxy_env(base_env(), team["home"](name), team["store"])  # noqa: E731
    admin_env = env("admin")
    for key, value in admin_env.items():
        if key.startswith("SIGNOFF_"):
            monkeypatch.setenv(key, value)
    from signoff.approvals.audit import AuditLog
    from signoff.approvals.store import open_store
    from signoff.team.users import People

    store = open_store()
    people = People(store)
    secrets = {name: people.add(name, ["approver"], PASSWORD) for name in ("alice", "bob", "carol")}
    carol_token = people.new_token("carol")

    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*.echo'\n    timeout: 30m\n")
    port = free_port()
    page = start_page(env("page"), port, tmp_path / "page.log")
    proxies: list[StdioProxy] = []
    try:
        proxies = [
            StdioProxy(env(f"machine{n}"), policy, machine=f"machine{n}", agent=f"agent{n}", log=tmp_path / f"proxy{n}.log")
            for n in range(proxies_n)
        ]
        assert all(proxy.initialized() for proxy in proxies), "a proxy did not start"
        per = calls // proxies_n
        for n, proxy in enumerate(proxies):  # all 500 at once: nobody has decided anything yet
            for i in range(1, per + 1):
                proxy.call(i, "echo", {"text": f"p{n}-{i}"})
        ids = list(range(1, per + 1))

        alice = PagePerson(port, "alice", PASSWORD, secrets["alice"])
        bob = PagePerson(port, "bob", PASSWORD, secrets["bob"])
        carol = CliPerson(env("carol"), "carol", carol_token)
        won, errors = run_racers(
            [(alice, {"seed": 1}), (bob, {"seed": 2}), (carol, {"newest_first": True, "first": True})],
            done=lambda: all(proxy.wait_for(ids, 0) for proxy in proxies),
        )
        assert not errors, errors
        unanswered = {n: [i for i in ids if i not in p.answers] for n, p in enumerate(proxies)}
        assert not any(unanswered.values()), (
            f"unanswered: {sum(map(len, unanswered.values()))}, exited: {[p.proc.poll() for p in proxies]}, "
            f"statuses: {collections.Counter(h.status for h in store.list_held(None, limit=10 * calls))}, "
            f"won: {collections.Counter(name for name, _ in won.values())}"
        )

        # every call answered exactly once, as its held row says
        assert [p.duplicates for p in proxies] == [[]] * proxies_n
        rows = {h.id: h for h in store.list_held(None, limit=10 * calls)}
        by_text = {h.arguments["text"]: h for h in rows.values()}
        not_held = [proxy.answer(i) for n, proxy in enumerate(proxies) for i in ids if f"p{n}-{i}" not in by_text]
        assert len(rows) == calls, (len(not_held), not_held[:3])
        for n, proxy in enumerate(proxies):
            for i in ids:
                held = by_text[f"p{n}-{i}"]
                answer = proxy.answer(i)
                assert held.status in ("approved", "denied"), held
                if held.status == "approved":
                    assert "error" not in answer and not answer["result"].get("isError"), answer
                    assert f"p{n}-{i}" in answer_text(answer)
                else:
                    assert answer.get("error") or answer["result"].get("isError"), answer
                assert held.identity is not None and (held.identity.machine, held.identity.agent) == (f"machine{n}", f"agent{n}")
        # every held row decided once, naming the person whose decision won
        assert set(won) == set(rows)
        for held_id, (name, _) in won.items():
            assert rows[held_id].decided_by == f"user:{name}"
        winners = collections.Counter(name for name, _ in won.values())
        assert set(winners) == {"alice", "bob", "carol"}, winners  # all three took part in the race

        # no audit row lost or doubled: held + decision (+ forwarded for approvals), per call
        def audit_per_call() -> dict[str, collections.Counter]:
            counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
            for row in store.audit_rows():
                if row["held_id"]:
                    counts[row["held_id"]][row["decision"]] += 1
            return counts

        expected = {
            h.id: collections.Counter({"held": 1, h.status: 1, **({"forwarded": 1} if h.status == "approved" else {})})
            for h in rows.values()
        }
        deadline = time.monotonic() + BOUND  # the forwarded row follows the answer to the client
        while (counts := audit_per_call()) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        assert counts == expected
        assert {r["decided_by"] for r in store.audit_rows() if r["decision"] in ("approved", "denied")} <= set(PEOPLE)
        verify = subprocess.run(
            [sys.executable, "-m", "signoff", "audit", "verify"], capture_output=True, text=True, env=admin_env, timeout=BOUND
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert AuditLog(store).verify()[1] is None

        # the kill switch, set once on the page, stops calls on all 20 proxies
        last = per + 1
        for n, proxy in enumerate(proxies):
            proxy.call(last, "echo", {"text": f"k{n}"})
        deadline = time.monotonic() + BOUND
        while len(store.list_held("pending")) < proxies_n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(store.list_held("pending")) == proxies_n
        alice.kill("stop everything")
        for n, proxy in enumerate(proxies):  # held ones are answered: refused
            assert proxy.wait_for([last]), f"proxy {n}'s held call was not answered after the kill"
            assert "kill" in answer_text(proxy.answer(last)).lower()
        killed = [h for h in store.list_held(None, limit=10 * calls) if h.arguments.get("text", "").startswith("k")]
        assert len(killed) == proxies_n and {(h.status, h.decided_by) for h in killed} == {("killed", "user:alice")}
        for n, proxy in enumerate(proxies):  # a new held call is refused at once (the kill is read in its commit)
            proxy.call(last + 1, "echo", {"text": "after"})
            assert proxy.wait_for([last + 1]), f"proxy {n} did not answer a call after the kill"
            assert "kill" in answer_text(proxy.answer(last + 1)).lower(), proxy.answer(last + 1)
        for n, proxy in enumerate(proxies):  # an allowed one too, once the proxy's kill cache saw it (bounded)
            request_id, deadline = last + 2, time.monotonic() + BOUND
            while True:
                proxy.call(request_id, "cancelled_ids", {})
                assert proxy.wait_for([request_id]), f"proxy {n} did not answer a call after the kill"
                if "kill" in answer_text(proxy.answer(request_id)).lower():
                    break
                assert time.monotonic() < deadline, f"proxy {n} still runs allowed calls after the kill"
                request_id += 1
        assert [p.duplicates for p in proxies] == [[]] * proxies_n
        assert AuditLog(store).verify()[1] is None
    finally:
        for proxy in proxies:
            proxy.close()
        page.terminate()
        page.wait(timeout=30)
        store.close()
