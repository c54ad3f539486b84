"""A decision applies only while the proxy that holds the call is alive (issue #12.4, #10.9).

Real `signoff run` processes hold a call for a raw JSON-RPC client; then the proxy is killed
(-9: nothing runs in it any more) or stopped by a signal, and `signoff approve` is run as the
person would run it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from held_calls import POLICY, WAIT, RawClient, decisions, held_call, signoff, wait_for
from signoff.approvals.audit import AuditLog
from signoff.approvals.broker import Broker
from signoff.approvals.liveness import ProxyLease, lease_dir, proxy_gone
from signoff.approvals.store import open_store
from signoff.errors import CallGoneError
from signoff.model import Decision, ToolCall, Verdict

pytestmark = pytest.mark.e2e


@pytest.fixture
def raw_client(tmp_path: Path):
    clients: list[RawClient] = []

    def start(policy: str = POLICY, **kwargs: Any) -> RawClient:
        clients.append(RawClient(tmp_path, policy, **kwargs))
        return clients[-1]

    yield start
    for client in clients:
        client.close()


# ---------------------------------------------------------------------- kill -9


def test_approve_after_kill_9_of_the_proxy_is_refused(raw_client) -> None:
    client = raw_client()
    client.call(1, "echo", {"text": "rm -rf /"})
    held = held_call()
    assert held.proxy_pid == client.proc.pid and held.proxy_lease
    os.kill(client.proc.pid, signal.SIGKILL)
    client.proc.wait(WAIT)

    result = signoff("approve", held.id)

    assert result.returncode == 4, result
    assert "gone" in result.stderr and held.id in result.stderr and "approved" not in result.stdout
    assert Broker().get(held.id).status == "abandoned"
    assert decisions(held.id) == ["held", "abandoned"]  # no approval was ever recorded
    again = signoff("deny", held.id, "--reason", "late")
    assert again.returncode == 4 and "abandoned" in again.stderr
    assert AuditLog(open_store()).verify()[1] is None


def test_pending_shows_a_dead_proxys_call_as_abandoned(raw_client) -> None:
    client = raw_client()
    client.call(1, "echo", {"text": "x"})
    held = held_call()
    os.kill(client.proc.pid, signal.SIGKILL)
    client.proc.wait(WAIT)

    listed = signoff("pending")

    assert listed.returncode == 0 and held.id not in listed.stdout.replace(f"{held.id} (", "")
    assert f"{held.id} (" in listed.stderr and "abandoned" in listed.stderr and "gone" in listed.stderr
    assert Broker().get(held.id).status == "abandoned"


def test_the_first_decision_after_the_proxy_died_is_refused_atomically(tmp_path: Path) -> None:
    """Many approvers race right after the proxy died: none wins, exactly one `abandoned` row."""
    broker = Broker()
    call = ToolCall("fs", "write_file", {"path": "/etc/passwd"})
    row, audit = broker._row(call, Decision(Verdict.ASK, "writes"), (), "wait", "")
    dead_lease = ProxyLease(lease_dir(broker.store))
    held = broker.store.insert_held({**row, "proxy_lease": str(dead_lease.path)}, audit)
    assert proxy_gone(held) is None
    dead_lease.release()  # the kernel does this at kill -9; here the lease file goes too
    assert proxy_gone(held) is not None

    outcomes: list[str] = []

    def approve() -> None:
        try:
            Broker().decide(held.id, True, channel="cli", by="racer")
            outcomes.append("approved")
        except CallGoneError:
            outcomes.append("gone")

    threads = [threading.Thread(target=approve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert outcomes == ["gone"] * 6
    assert decisions(held.id) == ["held", "abandoned"]


def test_a_live_proxys_lease_is_seen_from_another_process(raw_client) -> None:
    client = raw_client()
    client.call(1, "echo", {"text": "x"})
    held = held_call()
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "from signoff.approvals.broker import Broker; from signoff.approvals.liveness import "
            f"proxy_gone; print(proxy_gone(Broker().get({held.id!r})))",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert check.stdout.strip() == "None", check
    approved = signoff("approve", held.id)
    assert approved.returncode == 0, approved
    answer = client.answer(1)
    assert answer["result"]["content"][0]["text"].endswith("x")
    outcome = wait_for(lambda: Broker().get(held.id).outcome, "the outcome row")
    assert outcome == "forwarded: ok"
    assert decisions(held.id) == ["held", "approved", "forwarded"]


# ---------------------------------------------------------------------- stop signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_abandons_held_calls_and_answers_the_client(raw_client, signum: int) -> None:
    client = raw_client()
    client.call(7, "echo", {"text": "x"})
    held = held_call()
    started = time.monotonic()
    client.proc.send_signal(signum)

    answer = client.answer(7, timeout=10)
    code = client.proc.wait(10)

    assert time.monotonic() - started < 5  # promptly, not at the rule's timeout
    assert code == 128 + signum
    text = answer["result"]["content"][0]["text"]
    assert answer["result"]["isError"] and "did not run" in text and signal.Signals(signum).name in text
    assert Broker().get(held.id).status == "abandoned"
    assert decisions(held.id) == ["held", "abandoned"]
    refused = signoff("approve", held.id)
    assert refused.returncode == 4 and "abandoned" in refused.stderr
    leases = list(lease_dir(open_store()).glob("*.lock"))
    assert leases == []  # given back on the way out


def test_an_approved_call_whose_proxy_died_gets_a_not_run_outcome() -> None:
    """Approved, then the proxy died before reporting: the next proxy start records `not_run`, once."""
    broker = Broker()
    call = ToolCall("fs", "delete_file", {"path": "/tmp/x"})
    row, audit = broker._row(call, Decision(Verdict.ASK, "deletes"), (), "wait", "")
    lease = ProxyLease(lease_dir(broker.store))
    held = broker.store.insert_held({**row, "proxy_lease": str(lease.path)}, audit)
    broker.decide(held.id, True, by="alice")  # alive: accepted
    lease.release()

    Broker().mark_abandoned()
    Broker().mark_abandoned()  # a second start adds nothing

    assert decisions(held.id) == ["held", "approved", "not_run"]
    outcome = Broker().get(held.id).outcome or ""
    assert outcome.startswith("not_run: ") and "gone" in outcome


def test_stale_leases_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    from signoff.approvals.liveness import remove_stale_leases

    live, dead = ProxyLease(tmp_path), ProxyLease(tmp_path)
    assert dead._fd is not None
    os.close(dead._fd)  # what the kernel does at kill -9: the lock goes, the file stays
    dead._fd = None

    assert remove_stale_leases(tmp_path) == 1
    assert sorted(tmp_path.iterdir()) == [live.path]
    live.release()
    assert list(tmp_path.iterdir()) == []
