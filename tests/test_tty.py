"""The /dev/tty prompt, with the terminal replaced by a pipe (keys) and a captured screen."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from signoff.approvals.broker import Broker, Outcome
from signoff.approvals.store import open_store
from signoff.approvers.tty import TtyApprover
from signoff.model import Decision, ToolCall, Verdict
from test_watch import Keyboard, Screen

ASK = Decision(Verdict.ASK, "deletes need approval")
CALL = ToolCall("fs", "delete", {"path": "/srv/data"}, client="claude-code")


@pytest.fixture
def broker(signoff_home: Path) -> Broker:
    return Broker(open_store())


@pytest.fixture
def terminal(broker: Broker) -> Iterator[tuple[Keyboard, Screen, TtyApprover]]:
    keyboard, screen = Keyboard(), Screen()
    approver = TtyApprover(broker, keyboard.input, screen, by="frank", poll_interval=0.02).start()
    yield keyboard, screen, approver
    approver.stop()
    keyboard.close()


async def hold_and_type(broker: Broker, terminal: tuple[Keyboard, Screen, TtyApprover], *steps: tuple[str, str]) -> Outcome:
    """Hold CALL with the approver listening; for each (text on screen, keys) wait, then type."""
    keyboard, screen, approver = terminal
    broker.listeners.append(approver.offer)  # as attach() does
    results: list[Outcome] = []

    async def hold() -> None:
        results.append(await broker.hold(CALL, ASK))

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        for needle, keys in steps:
            await anyio.to_thread.run_sync(screen.wait_for, needle)
            keyboard.type(keys)
    return results[0]


@pytest.mark.anyio
async def test_a_held_call_is_approved_on_the_terminal(broker: Broker, terminal: tuple[Keyboard, Screen, TtyApprover]) -> None:
    outcome = await hold_and_type(broker, terminal, ("a tool call needs your approval", "a\n"))
    assert '"path": "/srv/data"' in terminal[1].text and "fs.delete" in terminal[1].text
    assert outcome.status == "approved" and (outcome.channel, outcome.decided_by) == ("tty", "frank")


@pytest.mark.anyio
async def test_deny_with_a_reason_on_the_terminal(broker: Broker, terminal: tuple[Keyboard, Screen, TtyApprover]) -> None:
    outcome = await hold_and_type(broker, terminal, ("› ", "r\n"), ("reason: ", "use the staging copy\n"))
    assert (outcome.status, outcome.reason, outcome.channel) == ("denied", "use the staging copy", "tty")


def test_a_call_decided_elsewhere_leaves_the_prompt(broker: Broker, terminal: tuple[Keyboard, Screen, TtyApprover]) -> None:
    keyboard, screen, approver = terminal
    first = broker.get(broker.issue_retry(CALL, ASK))
    approver.offer(first)
    screen.wait_for(f"{first.id} › ")
    broker.decide(first.id, False, by="gina", channel="cli")
    screen.wait_for(f"{first.id} was denied by gina (cli) meanwhile")
    second = broker.get(broker.issue_retry(ToolCall("fs", "delete", {"path": "/2"}), ASK))
    approver.offer(second)  # the prompt goes on with the next call
    screen.wait_for(f"{second.id} › ")
    keyboard.type("a\n")
    screen.wait_for(f"✔ approved {second.id}")


def test_calls_already_decided_are_not_prompted(broker: Broker, terminal: tuple[Keyboard, Screen, TtyApprover]) -> None:
    _, screen, approver = terminal
    gone = broker.get(broker.issue_retry(CALL, ASK))
    broker.decide(gone.id, True)
    approver.offer(gone)
    live = broker.get(broker.issue_retry(ToolCall("fs", "delete", {"path": "/3"}), ASK))
    approver.offer(live)
    screen.wait_for(f"{live.id} › ")
    assert gone.id not in screen.text


def test_stop_ends_a_waiting_prompt_and_the_call_stays_held(
    broker: Broker, terminal: tuple[Keyboard, Screen, TtyApprover]
) -> None:
    _, screen, approver = terminal
    held = broker.get(broker.issue_retry(CALL, ASK))
    approver.offer(held)
    screen.wait_for(f"{held.id} › ")
    broker.listeners.append(approver.offer)
    approver.stop()
    assert approver._thread is not None and not approver._thread.is_alive()
    assert broker.get(held.id).status == "pending"
    assert approver.offer not in broker.listeners


def test_attach_listens_to_new_holds(broker: Broker) -> None:
    keyboard, screen = Keyboard(), Screen()
    approver = TtyApprover(broker, keyboard.input, screen, poll_interval=0.02).attach()
    try:
        held_id = broker.issue_retry(CALL, ASK)
        screen.wait_for(f"{held_id} › ")
    finally:
        approver.stop()
        keyboard.close()


def test_no_terminal_logs_and_gives_none(broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="signoff.tty"):
        assert TtyApprover.open(broker, str(tmp_path / "no-such-tty")) is None
    assert "no terminal for --tty approvals" in caplog.text
