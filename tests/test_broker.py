"""The broker: hold until a decision (from any process), a timeout, the kill switch or a cancel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from signoff.approvals.broker import Broker, Outcome
from signoff.approvals.store import HeldCall, Store, open_store
from signoff.durations import format_duration
from signoff.errors import AlreadyDecidedError, DecisionError, StoreError, UnknownCallError
from signoff.model import Decision, ToolCall, Verdict

pytestmark = pytest.mark.anyio

SRC = str(Path(__file__).resolve().parents[1] / "src")
CALL = ToolCall("fs", "write_file", {"path": "/tmp/a.txt", "content": "hi"}, session="s1", client="claude-code")
ASK = Decision(Verdict.ASK, "writes need approval", rule="hitl_policies[0]")


@pytest.fixture
def broker(store: Store) -> Broker:
    return Broker(store)


async def until(predicate: Callable[[], Any], within: float = 10.0) -> Any:
    """Poll `predicate` (bounded) until it returns something truthy."""
    with anyio.fail_after(within):
        while not (value := predicate()):
            await anyio.sleep(0.005)
        return value


async def held_in(broker: Broker, count: int = 1) -> list[HeldCall]:
    return await until(lambda: len(p := broker.pending()) >= count and p)


async def run_hold(
    broker: Broker, results: list[Outcome], call: ToolCall = CALL, decision: Decision = ASK, **kwargs: Any
) -> None:
    results.append(await broker.hold(call, decision, **kwargs))


async def test_approval_from_another_process_reaches_hold_within_250ms(broker: Broker) -> None:
    results: list[Outcome] = []
    done = anyio.Event()

    async def holder() -> None:
        await run_hold(broker, results)
        results_time.append(time.monotonic())
        done.set()

    results_time: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        (held,) = await held_in(broker)
        code = (
            "import sys; from signoff.approvals.broker import Broker; "
            "Broker().decide(sys.argv[1], True, reason='looks fine', by='alice', channel='cli')"
        )
        with anyio.fail_after(60):
            await anyio.run_process([sys.executable, "-c", code, held.id], env={**os.environ, "PYTHONPATH": SRC})
        decided = time.monotonic()
        with anyio.fail_after(5):
            await done.wait()
    (outcome,) = results
    assert outcome == Outcome("approved", held.id, "looks fine", "alice", "cli", None)
    assert results_time[0] - decided < 0.25


async def test_denial_carries_the_reason_and_is_audited(broker: Broker) -> None:
    results: list[Outcome] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_hold, broker, results)
        (held,) = await held_in(broker)
        broker.decide(held.id, False, reason="not that file", by="bob", channel="watch")
    assert results[0].status == "denied" and results[0].reason == "not that file"
    assert (results[0].decided_by, results[0].channel) == ("bob", "watch")
    rows = [(r["decision"], r["channel"], r["held_id"]) for r in broker.store.audit_rows()]
    assert rows == [("held", "policy", held.id), ("denied", "watch", held.id)]
    with pytest.raises(AlreadyDecidedError):
        broker.decide(held.id, True)


async def test_edited_arguments_come_back_with_the_approval(broker: Broker) -> None:
    results: list[Outcome] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_hold, broker, results)
        (held,) = await held_in(broker)
        broker.decide(held.id, True, arguments={"path": "/tmp/b.txt", "content": "hi"})
    assert results[0].approved and results[0].arguments == {"path": "/tmp/b.txt", "content": "hi"}


async def test_timeout_denies_with_the_actual_timeout_in_words(broker: Broker) -> None:
    started = time.monotonic()
    outcome = await broker.hold(CALL, Decision(Verdict.ASK, "r", timeout=0.3))
    assert time.monotonic() - started >= 0.3
    assert (outcome.status, outcome.reason, outcome.channel) == ("timeout", "no decision within 0.3s", "timeout")
    assert broker.get(outcome.held_id).status == "timeout"
    assert [r["decision"] for r in broker.store.audit_rows()] == ["held", "timeout"]


async def test_on_timeout_allow_approves_when_the_clock_runs_out(broker: Broker) -> None:
    outcome = await broker.hold(CALL, Decision(Verdict.ASK, "r", timeout=0.1, on_timeout="allow"))
    assert outcome.status == "approved" and outcome.channel == "timeout"
    assert "on_timeout: allow" in outcome.reason


def test_timeouts_read_as_people_say_them() -> None:
    assert [format_duration(s) for s in (300, 90, 3600, 5400, 30, 0.5, 86400, 0)] == [
        "5m",
        "1m30s",
        "1h",
        "1h30m",
        "30s",
        "0.5s",
        "1d",
        "0s",
    ]


async def test_default_timeout_is_five_minutes(broker: Broker) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_hold, broker, [])
        (held,) = await held_in(broker)
        assert held.deadline - held.created == pytest.approx(300)
        broker.decide(held.id, True)


async def test_kill_switch_reaches_a_waiting_hold_and_refuses_new_ones(broker: Broker) -> None:
    results: list[Outcome] = []
    other = Broker(open_store())  # as if `signoff kill` ran elsewhere
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_hold, broker, results)
        tg.start_soon(run_hold, broker, results, ToolCall("fs", "delete", {"path": "/x"}))
        await held_in(broker, 2)
        killed = other.kill("agent went rogue", by="carol")
        assert len(killed) == 2
    assert [(o.status, o.reason, o.decided_by, o.channel) for o in results] == [
        ("killed", "agent went rogue", "carol", "kill")
    ] * 2
    state = await until(lambda: (s := broker.kill_state()).on and s)
    assert (state.reason, state.by) == ("agent went rogue", "carol")
    outcome = await broker.hold(CALL, ASK)  # while the switch is on, a new hold ends at once
    assert outcome.status == "killed"
    other.resume()
    await until(lambda: not broker.kill_state().on, within=1)


async def test_kill_state_is_cached_briefly_and_fails_closed(broker: Broker) -> None:
    assert not broker.kill_state().on
    Broker(open_store()).kill("now")
    await until(lambda: broker.kill_state().on, within=1)  # the cache lives ≤100 ms

    class Broken:
        def get_kill(self) -> Any:
            raise StoreError("disk on fire")

    closed = Broker(Broken())  # type: ignore[arg-type]
    state = closed.kill_state()
    assert state.on and "disk on fire" in state.reason


async def test_cancelling_the_call_withdraws_it(broker: Broker) -> None:
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_hold, broker, [])
            (held,) = await held_in(broker)
            tg.cancel_scope.cancel()
    row = broker.get(held.id)
    assert row.status == "withdrawn" and row.channel == "client"
    assert broker.pending() == []
    assert [r["decision"] for r in broker.store.audit_rows()] == ["held", "withdrawn"]
    with pytest.raises(AlreadyDecidedError):
        broker.decide(held.id, True)


async def test_on_wait_is_called_while_waiting(broker: Broker) -> None:
    ticks: list[float] = []

    async def on_wait(elapsed: float) -> None:
        ticks.append(elapsed)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_hold(broker, [], on_wait=on_wait, wait_interval=0.05))
        (held,) = await held_in(broker)
        await until(lambda: len(ticks) >= 3)
        broker.decide(held.id, True)
    assert ticks == sorted(ticks) and ticks[0] >= 0.05


async def test_a_failing_on_wait_withdraws_and_propagates(broker: Broker) -> None:
    async def on_wait(elapsed: float) -> None:
        raise RuntimeError("client gone")

    with pytest.raises(RuntimeError, match="client gone"):
        await broker.hold(CALL, ASK, on_wait=on_wait, wait_interval=0.01)
    assert broker.store.list_held("withdrawn")


async def test_a_store_that_cannot_be_written_denies(broker: Broker) -> None:
    class Broken:
        def take_lease(self) -> None:
            return None

        def insert_held(self, *args: Any) -> Any:
            raise StoreError("read-only file system")

    outcome = await Broker(Broken()).hold(CALL, ASK)  # type: ignore[arg-type]
    assert outcome.status == "denied" and "read-only file system" in outcome.reason


async def test_listeners_hear_of_each_new_hold(broker: Broker) -> None:
    heard: list[HeldCall] = []
    broker.listeners.append(heard.append)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_hold, broker, [])
        (held,) = await held_in(broker)
        broker.decide(held.id, True)
    assert [h.id for h in heard] == [held.id]


def test_abandoned_calls_of_dead_proxies_are_marked(broker: Broker) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    mine = broker.issue_retry(CALL, ASK)
    store = broker.store
    row, audit = broker._row(CALL, ASK, (), "wait", "")
    orphan = store.insert_held({**row, "proxy_pid": dead_pid}, audit).id
    alive = store.insert_held(row, audit).id
    marked = broker.mark_abandoned()
    assert [h.id for h in marked] == [orphan]
    assert broker.get(orphan).status == "abandoned" and "has exited" in (broker.get(orphan).decision_reason or "")
    assert broker.get(alive).status == "pending" and broker.get(mine).status == "pending"


def test_decide_refuses_nonsense(broker: Broker) -> None:
    held_id = broker.issue_retry(CALL, ASK)
    with pytest.raises(UnknownCallError):
        broker.decide("h-ffffff", True)
    with pytest.raises(DecisionError, match="only an approval"):
        broker.decide(held_id, False, remember="tool")
    with pytest.raises(DecisionError, match="remember must be"):
        broker.decide(held_id, True, remember="forever")
    assert broker.get(held_id).status == "pending"


# ---------------------------------------------------------------------- remembered decisions


def test_remember_tool_args_and_session(broker: Broker) -> None:
    other_args = ToolCall("fs", "write_file", {"path": "/etc/passwd"}, session="s1")
    other_session = ToolCall("fs", "write_file", {"path": "/tmp/a.txt"}, session="s2")
    assert broker.remembered_match(CALL) is None

    broker.decide(broker.issue_retry(CALL, ASK), True, remember="session", by="alice")
    (session_rule,) = broker.remembered()
    assert broker.remembered_match(CALL) == session_rule.id
    assert broker.remembered_match(other_args) == session_rule.id  # same tool, same session
    assert broker.remembered_match(other_session) is None

    broker.revoke(session_rule.id)
    assert broker.remembered_match(CALL) is None
    with pytest.raises(AlreadyDecidedError):
        broker.revoke(session_rule.id)

    broker.decide(broker.issue_retry(CALL, ASK), True, remember="args", by="alice")
    args_rule = broker.remembered()[0]
    assert broker.remembered_match(other_session) is None  # other arguments
    assert broker.remembered_match(ToolCall("fs", "write_file", dict(CALL.arguments), session="s3")) == args_rule.id
    assert broker.remembered_match(other_args) is None

    broker.decide(broker.issue_retry(CALL, ASK), True, remember="tool", by="alice")
    assert broker.remembered_match(other_args) is not None
    assert broker.remembered_match(ToolCall("fs", "read_file", {})) is None
    assert len(broker.remembered(include_revoked=True)) == 3


def test_remembered_decisions_render_as_policy_rules(broker: Broker) -> None:
    from signoff.policy.schema import Rule

    for kind in ("tool", "args", "session"):
        broker.decide(broker.issue_retry(CALL, ASK), True, remember=kind, by="alice")
    rules = broker.as_policy_rules()
    assert [r["tool"] for r in rules] == ["fs.write_file"] * 3
    assert all(r["decision"] == "allow" and "by alice" in r["reason"] for r in rules)
    assert rules[0]["reason"].startswith("remembered: always approve this tool")
    assert rules[1]["condition"] == 'args == {"content":"hi","path":"/tmp/a.txt"}'
    assert rules[2]["condition"] == 'session == "s1"'
    for rule in rules:
        Rule.model_validate(rule)  # valid hitl_policies entries


# ---------------------------------------------------------------------- hold: retry


def test_retry_token_is_bound_to_the_exact_call_and_single_use(broker: Broker) -> None:
    held_id = broker.issue_retry(CALL, ASK, "policy-1")
    assert broker.consume_retry(CALL, "policy-1") == Outcome("pending", held_id, f"still waiting for approval as {held_id}")
    broker.decide(held_id, True, by="alice")
    assert broker.consume_retry(ToolCall("fs", "write_file", {"path": "/other"}), "policy-1") is None
    assert broker.consume_retry(ToolCall("git", "write_file", dict(CALL.arguments)), "policy-1") is None
    assert broker.consume_retry(CALL, "policy-2") is None  # the policy changed since
    outcome = broker.consume_retry(CALL, "policy-1")
    assert outcome is not None and outcome.status == "approved" and outcome.decided_by == "alice"
    assert broker.consume_retry(CALL, "policy-1") is None  # spent


def test_retry_denial_is_reported_once(broker: Broker) -> None:
    held_id = broker.issue_retry(CALL, ASK)
    broker.decide(held_id, False, reason="no")
    outcome = broker.consume_retry(CALL)
    assert outcome is not None and (outcome.status, outcome.reason) == ("denied", "no")
    assert broker.consume_retry(CALL) is None


async def test_retry_times_out_and_tokens_expire(store: Store) -> None:
    broker = Broker(store, retry_ttl=0.0)
    held_id = broker.issue_retry(CALL, Decision(Verdict.ASK, "r", timeout=0.01))
    await until(lambda: time.time() > broker.get(held_id).deadline)  # tokens live in wall-clock time
    assert broker.consume_retry(CALL) is None  # expired: deadline + ttl 0
    assert broker.pending() == []  # and the unanswered call timed out
    assert broker.get(held_id).status == "timeout"


async def test_retry_pending_past_its_deadline_times_out_on_consume(store: Store) -> None:
    broker = Broker(store)
    held_id = broker.issue_retry(CALL, Decision(Verdict.ASK, "r", timeout=0.001))
    await until(lambda: time.time() > broker.get(held_id).deadline)
    outcome = broker.consume_retry(CALL)
    assert outcome is not None and outcome.status == "timeout" and outcome.reason == "no decision within 0.001s"


async def test_a_store_that_cannot_be_read_while_waiting_denies(broker: Broker) -> None:
    real = broker.store

    class FailingReads:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def get_held(self, held_id: str) -> Any:
            raise StoreError("database disk image is malformed")

    outcome = await Broker(FailingReads()).hold(CALL, ASK)  # type: ignore[arg-type]
    assert outcome.status == "denied" and "malformed" in outcome.reason
