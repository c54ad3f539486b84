"""`rate:` on a rule: hold once N matching calls ran within a window, counted from the audit trail."""

from __future__ import annotations

import time

import pytest

from policy_helpers import call
from signoff.approvals.audit import AuditCounter, entry
from signoff.approvals.store import open_store
from signoff.errors import PolicyError
from signoff.model import ToolCall
from signoff.policy.engine import Policy, PolicyContext
from signoff.policy.rate import MemoryCounter

RATE = """\
hitl_policies:
  - action: send_email          # more than 5 emails an hour
    rate: {max: 5, per: 1h}
  - tool: "*"                   # any tool more than 30 times a minute
    rate: 30/1m
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_rate_per_action_counts_every_tool_that_sends_email() -> None:
    clock = Clock()
    counter = MemoryCounter(clock=clock)
    policy = Policy.from_text(RATE, source="p.yaml", context=PolicyContext(counter=counter))
    mail = call("gmail.send_email", {"to": "a@b.com"})
    for i in range(5):
        assert policy.evaluate(mail).verdict.value == "allow", i
        counter.add("gmail" if i % 2 else "outlook", "send_email", {"to": "a@b.com"})
    held = policy.evaluate(mail)
    assert held.verdict.value == "ask" and "5 send_email calls in the last 1h (limit 5)" in held.reason
    clock.now += 3601
    assert policy.evaluate(mail).verdict.value == "allow"


def test_rate_per_tool() -> None:
    clock = Clock()
    counter = MemoryCounter(clock=clock)
    policy = Policy.from_text(RATE, source="p.yaml", context=PolicyContext(counter=counter))
    for _ in range(30):
        counter.add("time", "get_current_time")
    assert policy.evaluate(call("time.get_current_time", {})).verdict.value == "ask"
    assert policy.evaluate(call("time.convert_time", {})).verdict.value == "allow"  # another tool


def test_no_counter_fails_closed() -> None:
    policy = Policy.from_text(RATE, source="p.yaml")
    decision = policy.evaluate(call("time.get_current_time", {}))
    assert decision.verdict.value == "ask" and "counts as reached" in decision.reason


def test_a_failing_counter_fails_closed() -> None:
    class Broken:
        def count(self, window, match):
            raise OSError("disk gone")

    policy = Policy.from_text(RATE, source="p.yaml", context=PolicyContext(counter=Broken()))
    assert policy.evaluate(call("time.get_current_time", {})).verdict.value == "ask"


@pytest.mark.parametrize("bad", ["rate: {max: -1, per: 1h}", "rate: {max: 5, per: 0s}", "rate: five", "rate: {max: 5}"])
def test_bad_rates_are_refused_with_file_and_line(bad: str) -> None:
    with pytest.raises(PolicyError, match=r"^p\.yaml:\d+: hitl_policies\[0\]\.rate"):
        Policy.from_text(f"hitl_policies:\n  - tool: '*'\n    {bad}\n", source="p.yaml")


def test_audit_counter_counts_calls_that_ran_across_processes() -> None:
    store = open_store()
    policy = Policy.from_text(RATE, source="p.yaml", context=PolicyContext(counter=AuditCounter(store, cache_seconds=0)))
    mail = ToolCall("gmail", "send_email", {"to": "a@b.com"})
    for decision in ("allowed", "approved", "allowed", "denied", "held", "allowed", "allowed"):
        store.append_audit(entry(mail, decision, by="policy"))
    # 4 allowed + 1 approved ran; held/denied did not
    assert AuditCounter(store).count(3600, lambda s, t, a: t == "send_email") == 5
    assert policy.evaluate(mail).verdict.value == "ask"
    old = AuditCounter(store, clock=lambda: time.time() + 7200)
    assert old.count(3600, lambda s, t, a: True) == 0
