"""`signoff watch`, driven by a scripted keyboard (a pipe) and read from a captured screen."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from signoff.approvals.broker import Broker
from signoff.approvals.store import open_store
from signoff.approvers.console import KeyReader, render_held
from signoff.approvers.watch import Watch
from signoff.model import Decision, ToolCall, Verdict
from signoff.termsafe import fold

ASK = Decision(Verdict.ASK, "writes need approval", rule="hitl_policies[0]")


class Screen(io.TextIOBase):
    """A thread-safe output stream that tests can wait on (bounded)."""

    def __init__(self) -> None:
        self.text = ""
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            self.text += text
            self._changed.notify_all()
        return len(text)

    def wait_for(self, needle: str, timeout: float = 10.0, *, since: int = 0) -> None:
        """Wait until `needle` is on screen (written after position `since`)."""
        with self._changed:
            found = self._changed.wait_for(lambda: needle in self.text[since:], timeout)
        assert found, f"{needle!r} never appeared on screen:\n{self.text}"

    def after(self, mark: int) -> str:
        return self.text[mark:]


class Keyboard:
    """The write end of a pipe whose read end is the console's input."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        self.input: IO[str] = os.fdopen(read_fd, "r", encoding="utf-8")
        self._out = os.fdopen(write_fd, "w", encoding="utf-8")

    def type(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def close(self) -> None:
        self._out.close()


@pytest.fixture
def broker(signoff_home: Path) -> Broker:
    return Broker(open_store())


@pytest.fixture
def console(broker: Broker) -> Iterator[tuple[Keyboard, Screen, threading.Thread]]:
    keyboard, screen = Keyboard(), Screen()
    watch = Watch(broker, KeyReader(keyboard.input), screen, by="dana", poll_interval=0.02)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    yield keyboard, screen, thread
    keyboard.close()
    thread.join(10)
    assert not thread.is_alive(), "watch did not end when its input ended"


def test_watch_shows_a_call_and_approves_it(broker: Broker, console: tuple[Keyboard, Screen, threading.Thread]) -> None:
    keyboard, screen, _ = console
    screen.wait_for("waiting for held calls")
    held_id = broker.issue_retry(
        ToolCall("fs", "write_file", {"path": "/tmp/a", "content": "x" * 5000}, session="s1", client="claude-code"), ASK
    )
    screen.wait_for(f"{held_id} › ")
    assert "fs.write_file" in screen.text and '"path": "/tmp/a"' in screen.text
    assert "(+4600 more characters)" in screen.text and "x" * 401 not in screen.text  # folded
    assert "writes need approval" in screen.text and "client claude-code" in screen.text
    keyboard.type("a")
    screen.wait_for(f"✔ approved {held_id}")
    held = broker.get(held_id)
    assert (held.status, held.channel, held.decided_by) == ("approved", "watch", "dana")


def test_watch_denies_with_a_reason_and_shows_new_arrivals(
    broker: Broker, console: tuple[Keyboard, Screen, threading.Thread]
) -> None:
    keyboard, screen, _ = console
    first = broker.issue_retry(ToolCall("fs", "delete", {"path": "/srv"}), ASK)
    screen.wait_for(f"{first} › ")
    second = broker.issue_retry(ToolCall("git", "push", {"force": True}), ASK)
    screen.wait_for(f"── {second}  git.push")  # arrives while the first is asked about
    keyboard.type("r")
    screen.wait_for("reason: ")
    keyboard.type("not the whole server\n")
    screen.wait_for(f"✘ denied {first} (fs.delete): not the whole server")
    assert broker.get(first).decision_reason == "not the whole server"
    screen.wait_for(f"{second} › ")  # then the next one
    keyboard.type("d")
    screen.wait_for(f"✘ denied {second}")
    assert broker.get(second).status == "denied" and broker.get(second).decision_reason is None


def test_watch_drops_a_call_decided_elsewhere(broker: Broker, console: tuple[Keyboard, Screen, threading.Thread]) -> None:
    _, screen, _ = console
    held_id = broker.issue_retry(ToolCall("fs", "delete", {"path": "/x"}), ASK)
    screen.wait_for(f"{held_id} › ")
    Broker(open_store()).decide(held_id, True, by="erin", channel="web")
    screen.wait_for(f"{held_id} was approved by erin (web) meanwhile")


@pytest.mark.parametrize(
    ("which", "status", "words"),
    [("asked", "expired", "client stopped waiting"), ("queued", "withdrawn", "withdrawn by the client")],
)
def test_watch_says_when_a_call_can_no_longer_be_approved_and_moves_on(
    broker: Broker, console: tuple[Keyboard, Screen, threading.Thread], which: str, status: str, words: str
) -> None:
    """The call asked about, or one queued under it, goes away: one line says so, then the
    prompt is about a call still waiting."""
    from signoff.approvals.store import Resolution

    keyboard, screen, _ = console
    first = broker.issue_retry(ToolCall("fs", "delete", {"path": "/1"}), ASK)
    screen.wait_for(f"{first} › ")
    second = broker.issue_retry(ToolCall("git", "push", {"force": True}), ASK)
    screen.wait_for(f"── {second}")
    gone, left = (first, second) if which == "asked" else (second, first)
    qualified = broker.get(gone).qualified
    mark = len(screen.text)
    Broker(open_store()).store.resolve(gone, Resolution(status, "signoff", "client", "nobody waits"))
    screen.wait_for(f"{gone} ({qualified}): {words} — cannot be approved", since=mark)
    screen.wait_for(f"{left} › ", since=mark)
    keyboard.type("a")
    screen.wait_for(f"✔ approved {left}")
    assert broker.get(gone).status == status
    assert screen.text.count(f"{gone} ({qualified}): {words}") == 1


def test_watch_skip_moves_to_the_next_call_and_q_quits(
    broker: Broker, console: tuple[Keyboard, Screen, threading.Thread]
) -> None:
    keyboard, screen, thread = console
    first = broker.issue_retry(ToolCall("fs", "delete", {"path": "/1"}), ASK)
    screen.wait_for(f"{first} › ")
    second = broker.issue_retry(ToolCall("fs", "delete", {"path": "/2"}), ASK)
    screen.wait_for(f"── {second}")
    keyboard.type("s")
    screen.wait_for(f"{second} › ")
    mark = len(screen.text)
    keyboard.type("a")
    screen.wait_for(f"✔ approved {second}")
    screen.wait_for(f"{first} › ", since=mark)  # the skipped one comes back
    keyboard.type("q")
    thread.join(10)
    assert not thread.is_alive()
    assert broker.get(first).status == "pending"


def test_fold_and_render_keep_short_values_whole() -> None:
    assert fold({"a": "short", "b": ["x"] * 60}) == {"a": "short", "b": ["x"] * 50 + ["… (+10 more items)"]}
    assert fold("y" * 500, 100) == "y" * 100 + "… (+400 more characters)"


def test_render_shows_the_session_history(broker: Broker) -> None:
    held_id = broker.issue_retry(
        ToolCall("fs", "write_file", {"path": "/a"}, session="s1"),
        ASK,
        history=[ToolCall("fs", "read_file", {"path": f"/r{i}"}) for i in range(8)],
    )
    text = render_held(broker.get(held_id))
    assert "earlier in this session (8 calls, last 5)" in text
    assert 'fs.read_file {"path": "/r7"}' in text and "/r2" not in text
