"""Team mode on a real PostgreSQL server: races, concurrent chain writers, lost connections, a
server that is down, heartbeat leases, migrations started at once, hostile text."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from pg_server import close_pg_stores
from signoff.approvals.audit import AuditLog, entry
from signoff.approvals.broker import Broker, Outcome
from signoff.approvals.pg_schema import MIGRATIONS
from signoff.approvals.store import Resolution, open_store
from signoff.approvals.store_pg import PgStore
from signoff.errors import AlreadyDecidedError, CallGoneError, StoreError
from signoff.model import Decision, ToolCall, Verdict

pytestmark = pytest.mark.postgres

SRC = str(Path(__file__).resolve().parents[1] / "src")
CALL = ToolCall("fs", "write_file", {"path": "/tmp/a.txt", "content": "hi"}, session="s1", client="agent")
ASK = Decision(Verdict.ASK, "writes need approval", rule="hitl_policies[0]")


@pytest.fixture
def pg_url(pg_server: Any, monkeypatch: pytest.MonkeyPatch, signoff_home: Path) -> Iterator[str]:
    url = pg_server.url(pg_server.new_schema())
    monkeypatch.setenv("SIGNOFF_STORE", url)
    yield url
    close_pg_stores()


def until(predicate: Callable[[], Any], within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)
    return value


def audit_verify() -> subprocess.CompletedProcess[str]:
    """`signoff audit verify` as a person runs it, against the store SIGNOFF_STORE names."""
    return subprocess.run(
        [sys.executable, "-m", "signoff", "audit", "verify"],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run(code: str, *args: str, timeout: float = 120) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_open_store_picks_postgresql_and_migrates_once(pg_url: str, pg_server: Any) -> None:
    store = open_store()
    assert isinstance(store, PgStore) and "signoff@" not in store.where and store.where.startswith("postgresql://")
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    with pg_server.admin() as conn:
        version = conn.execute(f"SELECT version FROM {schema}.signoff_schema").fetchall()
        tables = {
            r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
        }
    assert version == [(len(MIGRATIONS),)]
    assert {"held", "audit", "audit_head", "state", "remembered", "retry_tokens", "proxy_leases"} <= tables


OPEN = """
from signoff.approvals.audit import entry
from signoff.approvals.store import open_store
store = open_store()
store.append_audit(entry(None, "allowed", server="s", tool="t", arguments={}))
print(type(store).__name__)
"""


def test_processes_starting_at_once_migrate_safely(pg_url: str) -> None:
    procs = [run(OPEN) for _ in range(8)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [r[1][-500:] for r in results]
    assert all(out.strip() == "PgStore" for out, _ in results)
    assert AuditLog(open_store()).verify() == (8, None)


def test_a_newer_schema_is_refused_with_one_line(pg_url: str) -> None:
    open_store().close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE signoff_schema SET version = version + 1")
    with pytest.raises(StoreError, match="newer than this signoff") as caught:
        open_store()
    assert "\n" not in str(caught.value)


def test_threads_with_their_own_connections_deciding_at_once_exactly_one_wins(pg_url: str) -> None:
    stores = [PgStore(pg_url) for _ in range(8)]
    broker = Broker(stores[0])
    for round_ in range(10):
        held_id = broker.issue_retry(ToolCall("fs", "delete", {"n": round_}), ASK)
        go = threading.Barrier(len(stores))
        wins: list[str] = []
        lost: list[str] = []

        def decide(
            store: PgStore,
            n: int,
            go: threading.Barrier = go,
            held_id: str = held_id,
            wins: list[str] = wins,
            lost: list[str] = lost,
        ) -> None:
            go.wait()
            try:
                store.resolve(held_id, Resolution("approved" if n % 2 else "denied", f"p{n}", "cli"))
                wins.append(f"p{n}")
            except AlreadyDecidedError:
                lost.append(f"p{n}")

        threads = [threading.Thread(target=decide, args=(s, n)) for n, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(wins) == 1 and len(lost) == 7
        held = stores[0].get_held(held_id)
        assert held is not None and held.decided_by == wins[0]
        decisions = [r["decision"] for r in stores[0].audit_rows() if r["held_id"] == held_id]
        assert decisions == ["held", held.status]
    assert AuditLog(stores[0]).verify()[1] is None
    for store in stores:
        store.close()


def test_a_kill_racing_with_holds_on_other_connections_leaves_nothing_pending(pg_url: str) -> None:
    """Holds keep arriving on four connections while the switch is thrown: each call is either
    killed by the switch's own commit or, held after it, killed at once; none stays pending."""
    stores = [PgStore(pg_url) for _ in range(5)]
    stop = threading.Event()
    made = [0]
    failed: list[BaseException] = []

    def holder(store: PgStore, n: int) -> None:
        broker = Broker(store)
        i = 0
        while not stop.is_set():
            try:
                broker.issue_retry(ToolCall("fs", "rm", {"holder": n, "i": i}), ASK)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failed.append(exc)
                stop.set()
            i += 1
            made[0] += 1

    threads = [threading.Thread(target=holder, args=(s, n)) for n, s in enumerate(stores[:4])]
    for t in threads:
        t.start()
    until(lambda: made[0] >= 40)
    killed = Broker(stores[4]).kill("race", by="carol")
    until(lambda: made[0] >= len(killed) + 40 or failed)  # holds go on after the kill
    stop.set()
    for t in threads:
        t.join(60)
    assert not failed, f"a hold failed while the switch was thrown: {failed[0]}"
    assert killed and stores[4].list_held("pending") == []
    statuses = {h.status for h in stores[4].list_held(None, limit=100_000)}
    assert statuses == {"killed"}
    assert AuditLog(stores[4]).verify()[1] is None


def test_the_kill_switch_is_not_starved_by_holds_arriving_behind_it(pg_url: str) -> None:
    """A hold in progress share-locks the switch; the kill waits for it; a hold arriving after the
    kill must queue behind the kill (and be killed), not join the sharers ahead of it. Row locks
    let it jump the queue, so a steady stream of holds kept the switch waiting for seconds while
    thousands of calls piled up pending (and holds behind it then hit the lock timeout)."""
    store, later = PgStore(pg_url), PgStore(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as watch, psycopg.connect(pg_url) as sharer:
        sharer.execute("SELECT value FROM state WHERE key = 'kill' FOR SHARE")  # a hold mid-transaction

        def waiting() -> int:
            row = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()
            return 0 if row is None else int(row[0])

        killed: list[list[Any]] = []
        kill = threading.Thread(target=lambda: killed.append(Broker(store).kill("stop", by="carol")))
        kill.start()
        until(lambda: waiting() >= 1)
        held: list[str] = []
        hold = threading.Thread(target=lambda: held.append(Broker(later).issue_retry(CALL, ASK)))
        hold.start()
        until(lambda: waiting() >= 2 or held)
        assert not held, "a hold that arrived after the kill went ahead of it"
        sharer.rollback()
        kill.join(30)
        hold.join(30)
    assert killed and held
    late = store.get_held(held[0])
    assert late is not None and late.status == "killed"
    for s in (store, later):
        s.close()


WRITER = """
import sys
from signoff.approvals.audit import AuditLog
from signoff.approvals.broker import Broker
from signoff.model import Decision, ToolCall, Verdict
from signoff.approvals.store import open_store
store = open_store()
log, broker = AuditLog(store), Broker(store)
for i in range(int(sys.argv[1])):
    log.append(ToolCall("srv", "tool", {"writer": sys.argv[2], "i": i}), "allowed")
    if i % 5 == 0:  # held calls and decisions chain in the same order as plain rows
        broker.decide(broker.issue_retry(ToolCall("srv", "w", {"w": sys.argv[2], "i": i}), Decision(Verdict.ASK, "r")),
                      i % 2 == 0, by="w" + sys.argv[2])
"""


def test_eight_concurrent_writers_make_one_chain_without_gaps(pg_url: str) -> None:
    procs = [run(WRITER, "40", str(n)) for n in range(8)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e[-800:] for e in errors]
    store = open_store()
    ids = [r["id"] for r in store.audit_rows()]
    expected = 8 * (40 + 8 * 2)  # 40 rows each, and 8 held calls each with their decision
    assert ids == list(range(1, expected + 1))
    assert AuditLog(store).verify() == (expected, None)
    assert store.audit_head() == (expected, list(store.audit_rows())[-1]["hash"])
    cli = audit_verify()
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert str(expected) in cli.stdout + cli.stderr


def test_a_rewritten_audit_row_is_found_by_audit_verify(pg_url: str) -> None:
    store = open_store()
    log = AuditLog(store)
    for i in range(5):
        log.append(ToolCall("s", "t", {"i": i}), "allowed")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE audit SET decision = 'denied' WHERE id = 3")
    cli = audit_verify()
    assert cli.returncode == 1 and "row 3" in cli.stdout + cli.stderr


def test_change_tokens_move_on_notify_from_another_process_per_topic(pg_url: str) -> None:
    store = open_store()
    assert isinstance(store, PgStore)
    broker = Broker(store)
    first, second = broker.issue_retry(CALL, ASK), broker.issue_retry(ToolCall("fs", "rm", {}), ASK)
    assert store.changes.wait_listening(10)
    tokens = (store.change_token(first), store.change_token(second), store.change_token("kill"))
    code = "import sys; from signoff.approvals.broker import Broker; Broker().decide(sys.argv[1], True, by='alice')"
    assert run(code, first).wait(60) == 0
    until(lambda: store.change_token(first) != tokens[0])
    assert (store.change_token(second), store.change_token("kill")) == tokens[1:]  # others did not move


async def hold_in_background(broker: Broker, results: list[Outcome], call: ToolCall = CALL) -> None:
    results.append(await broker.hold(call, ASK))


async def pending(broker: Broker, count: int = 1) -> list[Any]:
    with anyio.fail_after(20):
        while len(found := await anyio.to_thread.run_sync(broker.pending)) < count:
            await anyio.sleep(0.005)
    return found


@pytest.mark.anyio
async def test_a_dropped_listen_connection_reconnects_and_still_sees_the_decision(pg_url: str, pg_server: Any) -> None:
    """The proxy's LISTEN backend is terminated while it waits; the decision is made before it is
    back (its NOTIFY reaches nobody); the re-read after reconnecting finds it."""
    store = open_store()
    assert isinstance(store, PgStore)
    broker = Broker(store)
    results: list[Outcome] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_in_background, broker, results)
        (held,) = await pending(broker)
        assert await anyio.to_thread.run_sync(store.changes.wait_listening, 10)
        before = store.changes.reconnects
        with pg_server.admin() as conn:  # every backend of this test's proxy, the pool's too
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'signoff%'"
                " AND pid <> pg_backend_pid()"
            )
        await anyio.to_thread.run_sync(lambda: Broker(PgStore(pg_url)).decide(held.id, True, by="alice"))
        with anyio.fail_after(20):
            while not results:
                await anyio.sleep(0.01)
    assert results[0].status == "approved" and results[0].decided_by == "alice"
    assert store.changes.reconnects > before


@pytest.mark.anyio
async def test_kill_from_another_host_reaches_waiting_holds_at_once(pg_url: str) -> None:
    broker = Broker(open_store())
    results: list[Outcome] = []
    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(hold_in_background, broker, results, ToolCall("fs", "rm", {"n": n}))
        await pending(broker, 5)
        other = await anyio.to_thread.run_sync(lambda: Broker(PgStore(pg_url)))  # connecting is not the point
        await anyio.to_thread.run_sync(lambda: other.kill("stop", by="carol"))
        started = time.monotonic()  # from the kill's commit: its NOTIFY, not a poll, wakes the holds
        with anyio.fail_after(5):
            while len(results) < 5:
                await anyio.sleep(0.002)
        took = time.monotonic() - started
    assert {o.status for o in results} == {"killed"} and took < 1.0
    assert (await broker.hold(CALL, ASK)).status == "killed"


def test_a_proxy_whose_lease_lapsed_is_gone_and_its_call_cannot_be_approved(pg_url: str) -> None:
    store = open_store()
    assert isinstance(store, PgStore)
    broker = Broker(store)
    row, audit = broker._row(CALL, ASK, (), "wait", "")
    held = store.insert_held({**row, "proxy_host": "laptop-17", "proxy_pid": 4242}, audit)  # another host
    assert store.proxy_gone(held) is None  # its lease (ours) beats
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE proxy_leases SET heartbeat = heartbeat - 1000 WHERE lease = %s", (held.proxy_lease,))
    assert "no heartbeat" in (store.proxy_gone(held) or "")
    with pytest.raises(CallGoneError, match="can no longer be decided"):
        Broker(PgStore(pg_url)).decide(held.id, True, by="alice")
    assert store.get_held(held.id).status == "abandoned"  # type: ignore[union-attr]
    assert store.remove_stale_leases() == 1
    broker.release()
    assert store.proxy_gone(store.insert_held(row, audit)) is not None  # released: gone


def test_hostile_text_is_held_and_audited_not_refused(pg_url: str) -> None:
    """NUL and lone surrogates (which PostgreSQL text refuses) from the model still get their rows."""
    store = open_store()
    broker = Broker(store)
    call = ToolCall("fs", "wr\x00ite\ud800", {"p": "\x00"}, session="s\x00", client="c\udfff")
    held_id = broker.issue_retry(call, ASK)
    held = broker.get(held_id)
    assert held.tool == "wr\ufffdite\ufffd" and held.session == "s\ufffd"
    AuditLog(store).append(call, "allowed")
    assert AuditLog(store).verify() == (2, None)


@pytest.mark.anyio
async def test_a_server_that_is_down_fails_closed_with_one_line(pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from pg_server import PgServer

    own = PgServer(pg_server.bin).init().start()
    try:
        url = own.url()
        monkeypatch.setenv("SIGNOFF_STORE", url)
        store = open_store(busy_timeout_ms=400)
        broker = Broker(store)
        results: list[Outcome] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold_in_background, broker, results)
            await pending(broker)
            await anyio.to_thread.run_sync(own.stop)
            with anyio.fail_after(30):
                while not results:
                    await anyio.sleep(0.01)
        (outcome,) = results
        assert outcome.status == "denied" and "signoff could not read its store" in outcome.reason
        assert "\n" not in outcome.reason
        again = await broker.hold(CALL, ASK)  # a new call while it is down: denied, not run
        assert again.status == "denied" and "\n" not in again.reason
        with pytest.raises(StoreError) as caught:
            AuditLog(store).append(CALL, "allowed")
        assert "\n" not in str(caught.value)
        assert broker.kill_state().on  # the kill switch reads as on
        with pytest.raises(StoreError, match="cannot reach the signoff store postgresql://") as opening:
            open_store()
        assert "\n" not in str(opening.value)
        await anyio.to_thread.run_sync(own.start)  # back: the same store (pool, LISTEN) works again
        with anyio.fail_after(30):
            while not (await anyio.to_thread.run_sync(store.changes.wait_listening, 0.1)):
                pass
        async with anyio.create_task_group() as tg:
            results.clear()
            tg.start_soon(hold_in_background, broker, results)  # first closes the call denied while down
            with anyio.fail_after(20):
                while True:
                    calls = await anyio.to_thread.run_sync(broker.pending)
                    if calls and outcome.held_id not in {h.id for h in calls}:
                        break
                    await anyio.sleep(0.01)
            (held,) = calls
            await anyio.to_thread.run_sync(lambda: Broker(PgStore(url)).decide(held.id, True, by="alice"))
        assert results[0].status == "approved"
        orphan = store.get_held(outcome.held_id)  # its client was told "denied": nobody can approve it now
        assert orphan is not None and orphan.status == "denied" and "could not read" in (orphan.decision_reason or "")
        assert AuditLog(store).verify()[1] is None
        store.close()
    finally:
        own.remove()


def test_signoff_yaml_store_selects_the_backend(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from signoff.runner import resolve_servers

    config = tmp_path / "signoff.yaml"
    config.write_text(f"store: '{pg_url}'\nservers:\n  time:\n    command: uvx\n    args: [mcp-server-time]\n")
    monkeypatch.delenv("SIGNOFF_STORE")
    resolve_servers([], str(config), None)
    assert os.environ["SIGNOFF_STORE"] == pg_url and isinstance(open_store(), PgStore)
    monkeypatch.setenv("SIGNOFF_STORE", str(tmp_path / "other.db"))  # the environment wins over the file
    resolve_servers([], str(config), None)
    assert os.environ["SIGNOFF_STORE"] == str(tmp_path / "other.db") and not isinstance(open_store(), PgStore)


def test_audit_append_is_one_round_of_locking(pg_url: str) -> None:
    """Measured (not a bound that matters): an allowed call's audit row on PostgreSQL."""
    log = AuditLog(open_store())
    content = entry(ToolCall("fs", "read_file", {"path": "/etc/hosts"}), "allowed", duration_ms=0.2)
    started = time.perf_counter()
    for _ in range(200):
        log.store.append_audit(content)
    per_row_us = (time.perf_counter() - started) / 200 * 1e6
    print(f"audit append on PostgreSQL: {per_row_us:.0f} µs per row")
    assert per_row_us < 50_000


@pytest.mark.anyio
async def test_signoff_run_with_its_database_unreachable_refuses_calls_with_one_line(tmp_path: Path) -> None:
    from conftest import connect, fake_server, free_port, through_signoff

    url = f"postgresql://signoff@127.0.0.1:{free_port()}/postgres"
    async with connect(through_signoff(fake_server(), "--policy", "none"), env={"SIGNOFF_STORE": url}) as client:
        with anyio.fail_after(60):
            result = await client.call_tool("echo", {"text": "x"})
    assert result.is_error
    text = result.content[0].text
    assert "cannot reach the signoff store postgresql://127.0.0.1" in text and "\n" not in text.strip()
