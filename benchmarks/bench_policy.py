"""Policy evaluation time per call at 10, 100 and 1,000 rules, and shell parsing on its own.

Most rules name other tools (as in a real multi-server policy) and a few can match the call,
with CEL conditions, domains and SQL tables among them. Prints median and p99 in µs for a
held call of a catalogued tool (gmail.send_email to an external address: recipients read,
facts and reason built), an allowed catalogued read (time.get_current_time), and a held
call of a tool the catalog does not know (names only). The second table times reading shell
command lines with bashlex (first sight; repeats are cached). Usage: bench_policy.py [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import time

from signoff.model import ToolCall
from signoff.policy.engine import Policy

APPLICABLE = """\
  - action: send_email
    condition: recipient_is_external
  - action: [payment, purchase]
    condition: amount > 100
  - action: api_call
    domains: ["production.*", "payments.stripe.com"]
  - tool: "mail.*"
    condition: "args.subject.contains('invoice') && size(args.to) > 3"
  - action: database_write
    tables: [users, orders]
"""


def policy_text(rules: int) -> str:
    lines = ["internal_domains: [company.com]", "hitl_policies:"]
    for i in range(rules - 5):
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
    matching = ToolCall("gmail", "send_email", {"to": "bob@elsewhere.org", "subject": "invoice 42"}, {"readOnlyHint": False})
    unmatched = ToolCall("time", "get_current_time", {"timezone": "UTC"}, {"readOnlyHint": True})
    by_name = ToolCall("mail", "send_email", {"to": "bob@elsewhere.org", "subject": "invoice 42"}, {"readOnlyHint": False})
    print("catalogued: gmail.send_email (held) and time.get_current_time (allowed); by name: mail.send_email (held)")
    print(f"{'rules':>6}{'load ms':>10}{'held call p50 µs':>19}{'p99':>8}{'allowed call p50 µs':>22}{'p99':>8}"
          f"{'held by name p50 µs':>22}{'p99':>8}")
    for rules in (10, 100, 1000):
        start = time.perf_counter()
        policy = Policy.from_text(policy_text(rules), source=f"<{rules} rules>")
        load = (time.perf_counter() - start) * 1000
        assert policy.profile(matching).catalogued and policy.profile(unmatched).catalogued
        held = measure(policy, matching, iterations)
        allowed = measure(policy, unmatched, iterations)
        named = measure(policy, by_name, iterations)
        assert policy.evaluate(matching).verdict.value == "ask" and policy.evaluate(unmatched).verdict.value == "allow"
        print(f"{rules:>6}{load:>10.1f}{held[0]:>19.1f}{held[1]:>8.1f}{allowed[0]:>22.1f}{allowed[1]:>8.1f}{named[0]:>22.1f}{named[1]:>8.1f}")
    print(f"\n{iterations} evaluations per cell, after the tool's first call (which builds its index entry).\n")
    shell_table(200 if args.smoke else 5000)


SHELL = [
    "ls -la | grep foo",
    "cd /w && rm -rf build/ && make",
    "sudo -u deploy sh -c 'kubectl delete pod web-1 && curl -X POST https://hooks.example.com/x -d ok'",
    "psql -h db -c \"DELETE FROM users WHERE id = 1\"",
]


def shell_table(iterations: int) -> None:
    from signoff.policy.understand import shell

    print(f"{'shell command (first sight, not cached)':<60}{'p50 µs':>10}{'p99 µs':>10}")
    for command in SHELL:
        samples = []
        for i in range(iterations):
            text = f"{command} # {i}"  # a new text each time: no cache hit
            start = time.perf_counter_ns()
            shell.analyze(text)
            samples.append((time.perf_counter_ns() - start) / 1000)
        samples.sort()
        print(f"{command[:58]:<60}{statistics.median(samples):>10.1f}{samples[int(0.99 * (len(samples) - 1))]:>10.1f}")


if __name__ == "__main__":
    main()
