"""Policy evaluation time per call at 10, 100 and 1,000 rules.

Most rules name other tools (as in a real multi-server policy) and a few can match the call,
with CEL conditions, domains and SQL tables among them. Prints median and p99 in µs for a
call whose tool is already indexed (the steady state) and for an allowed call with no
applicable rule. Usage: python benchmarks/bench_policy.py [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import time

from signoff.model import ToolCall
from signoff.policy import Policy

APPLICABLE = """\
  - action: send_email
    condition: recipient_is_external
  - action: api_call
    domains: ["production.*", "payments.stripe.com"]
  - tool: "mail.*"
    condition: "args.subject.contains('invoice') && size(args.to) > 3"
  - action: database_write
    tables: [users, orders]
"""


def policy_text(rules: int) -> str:
    lines = ["internal_domains: [company.com]", "hitl_policies:"]
    for i in range(rules - 4):
        lines.append(f'  - tool: "server{i % 50}.tool_{i}"')
        lines.append(f"    condition: \"args.n > {i}\"")
    return "\n".join(lines) + "\n" + APPLICABLE


def measure(policy: Policy, call: ToolCall, iterations: int) -> tuple[float, float]:
    policy.evaluate(call)  # index the tool
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        policy.evaluate(call)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    iterations = 200 if args.smoke else 20000
    matching = ToolCall("mail", "send_email", {"to": "bob@elsewhere.org", "subject": "invoice 42"}, {"readOnlyHint": False})
    unmatched = ToolCall("time", "get_current_time", {"timezone": "UTC"}, {"readOnlyHint": True})
    print(f"{'rules':>6}{'load ms':>10}{'held call p50 µs':>19}{'p99 µs':>9}{'allowed call p50 µs':>22}{'p99 µs':>9}")
    for rules in (10, 100, 1000):
        start = time.perf_counter()
        policy = Policy.from_text(policy_text(rules), source=f"<{rules} rules>")
        load = (time.perf_counter() - start) * 1000
        held = measure(policy, matching, iterations)
        allowed = measure(policy, unmatched, iterations)
        assert policy.evaluate(matching).verdict.value == "ask"
        print(f"{rules:>6}{load:>10.1f}{held[0]:>19.1f}{held[1]:>9.1f}{allowed[0]:>22.1f}{allowed[1]:>9.1f}")
    print(f"\n{iterations} evaluations per cell, after the tool's first call (which builds its index entry).")


if __name__ == "__main__":
    main()
