"""Outcome rows are written off the event loop (approvals/writer.py), in order, and never lost:
a clean exit drains them before the lease is given up; a failed write is said loudly."""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
import pytest

from signoff.approvals.audit import AuditLog
from signoff.approvals.broker import Broker
from signoff.approvals.gate import ApprovalGate
from signoff.approvals.writer import Writer
from signoff.errors import StoreError
from signoff.gate import Admission
from signoff.model import Decision, ToolCall, Verdict
from signoff.policy.engine import Policy

CALL = ToolCall("fs", "write_file", {"path": "/tmp/a.txt", "content": "hi"}, session="s1", client="agent")
ASK = Decision(Verdict.ASK, "writes need approval", rule="hitl_policies[0]")
POLICY = Policy.from_text("hitl_policies:\n  - tool: 'fs.write_file'\n")


class Holder:
    def get(self) -> Policy:
        return POLICY


def approved_in_flight(broker: Broker) -> tuple[ApprovalGate, Admission, str]:
    """An approved call as the gate knows it once it was forwarded (its outcome not yet recorded)."""
    gate = ApprovalGate(Holder(), broker)
    held_id = broker.issue_retry(CALL, ASK, "")
    broker.decide(held_id, True, by="ann")
    admission = Admission(True, decision=ASK, ticket={"decision": "approved", "held": held_id, "policy": ""})
    gate.in_flight[id(admission)] = (CALL, admission)
    return gate, admission, held_id


def outcome_rows(broker: Broker, held_id: str) -> list[dict[str, Any]]:
    return [r for r in broker.store.audit_rows(decision="forwarded") if r["held_id"] == held_id]


@pytest.mark.postgres
def test_finished_does_not_wait_for_the_chain_head_lock(pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another host holds the audit chain's head lock: recording the outcome returns at once (the
    row waits in the writer, not the event loop), and is written once the lock is free."""
    from pg_server import close_pg_stores

    url = pg_server.url(pg_server.new_schema())
    monkeypatch.setenv("SIGNOFF_STORE", url)
    try:
        broker = Broker()
        gate, admission, held_id = approved_in_flight(broker)
        with psycopg.connect(url) as other:  # a transaction of another host, holding the head lock
            other.execute("SELECT id FROM audit_head FOR UPDATE")
            gate.finished(CALL, admission, is_error=False)
            assert broker.writer.pending == 1  # queued, not written on the caller's thread
            assert outcome_rows(broker, held_id) == []
        assert broker.writer.drain(20)
        rows = outcome_rows(broker, held_id)
        assert len(rows) == 1 and rows[0]["reason"] == "ok"
        checked, problem = AuditLog(broker.store).verify()
        assert problem is None and checked >= 3
    finally:
        close_pg_stores()


def test_release_writes_every_queued_outcome_row_before_giving_up_the_lease(store: Any) -> None:
    broker = Broker(store)
    broker.lease_path()
    gate, admission, held_id = approved_in_flight(broker)
    go = threading.Event()
    broker.writer.submit(go.wait, what="a slow earlier row")  # the outcome row queues behind it
    gate.finished(CALL, admission, is_error=False)
    assert outcome_rows(broker, held_id) == []
    released_with: list[int] = []
    release_lease = store.release_lease
    store.release_lease = lambda: (released_with.append(len(outcome_rows(broker, held_id))), release_lease())[1]
    go.set()
    broker.release()
    assert released_with == [1]  # the row was in the store before the lease was given up
    assert broker.writer.pending == 0


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (StoreError("the store is read-only"), "AUDIT ROW NOT WRITTEN for fs.write_file (forwarded ok): the store is read-only"),
        # not only StoreError: a bug or a driver error in one write must not kill the thread, or
        # every later outcome row would wait in the queue forever (and drain would time out)
        (ValueError("a row the driver cannot take"), "AUDIT ROW NOT WRITTEN for fs.write_file (forwarded ok)"),
    ],
)
def test_a_row_that_cannot_be_written_is_said_loudly_and_later_rows_still_are(
    error: Exception, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = Writer()
    done: list[str] = []

    def fails() -> None:
        raise error

    with caplog.at_level(logging.ERROR, logger="signoff.approval"):
        writer.submit(fails, what="fs.write_file (forwarded ok)")
        writer.submit(done.append, "second", what="the next row")
        assert writer.drain(10)
    assert done == ["second"]
    assert said in caplog.text
