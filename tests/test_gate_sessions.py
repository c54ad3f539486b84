"""One broker, many sessions' gates (`signoff run --http` makes a gate per HTTP session): a held
call is announced once, by the gate that holds it, and gates of ended sessions are not kept."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import anyio
import pytest

from signoff.approvals.broker import Broker
from signoff.approvals.gate import ApprovalGate
from signoff.model import ToolCall
from signoff.policy.engine import Policy

pytestmark = pytest.mark.anyio

POLICY = Policy.from_text("hitl_policies:\n  - tool: 'fs.write'\n    reason: writes wait\n")


class Holder:
    def get(self) -> Policy:
        return POLICY


class Recorder:
    """A notifier that records what it was asked to announce."""

    def __init__(self) -> None:
        self.held_ids: list[str] = []

    def held(self, call: ToolCall, held_id: str, reason: str, *, shown: Any = None) -> None:
        self.held_ids.append(held_id)


async def test_a_hold_is_announced_once_however_many_sessions_came_before(caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker()
    notifier = Recorder()
    gates = [ApprovalGate(Holder(), broker, notifier=notifier, elicit=False) for _ in range(5)]
    first = weakref.ref(gates[0])
    call = ToolCall("fs", "write", {"path": "/tmp/x"})
    admission = gates[-1].check(call)
    assert admission.hold
    heard: list[Any] = []
    broker.listeners.append(heard.append)

    async def approve() -> None:
        while not heard:
            await anyio.sleep(0.01)
        broker.decide(heard[0].id, True, by="ann")

    caplog.set_level("INFO", logger="signoff.approval")
    async with anyio.create_task_group() as tg:
        tg.start_soon(approve)
        with anyio.fail_after(10):
            approved = await gates[-1].hold(call, admission, None)
    assert approved.allowed
    assert notifier.held_ids == [heard[0].id]  # once, not once per gate the broker ever met
    assert len([r for r in caplog.records if r.getMessage().startswith("held fs.write")]) == 1
    del gates
    gc.collect()
    assert first() is None, "an ended session's gate is kept alive by the broker"
    broker.store.close()


def test_a_retry_hold_is_announced_once_too() -> None:
    """`hold: retry` queues the call inside check() (maybe in a worker thread): same rule."""
    policy = Policy.from_text("hitl_policies:\n  - tool: 'fs.write'\n    hold: retry\n")

    class RetryHolder:
        def get(self) -> Policy:
            return policy

    broker = Broker()
    notifier = Recorder()
    gates = [ApprovalGate(RetryHolder(), broker, notifier=notifier, elicit=False) for _ in range(4)]
    admission = gates[2].check(ToolCall("fs", "write", {"path": "/tmp/y"}))
    assert not admission.allowed and not admission.hold and "held for the user's approval" in admission.text
    assert len(notifier.held_ids) == 1
    broker.store.close()
