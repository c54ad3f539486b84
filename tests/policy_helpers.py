"""Shared by the policy tests: the seed policy from the format spec, and call helpers."""

from __future__ import annotations

from pathlib import Path

from signoff.model import ToolCall
from signoff.policy.engine import Policy

ROOT = Path(__file__).resolve().parents[1]

SEED = """\
hitl_policies:
  - action: file_delete          # all file deletions require approval
    scope: all
  - action: send_email           # external emails require approval
    condition: recipient_is_external
  - action: api_call             # calls to these domains require approval
    domains: [production.api.company.com, payments.stripe.com, "production.*"]
  - action: purchase             # purchases over $100 require approval
    condition: amount > 100
  - action: database_write
    tables: [users, orders, payments]
"""


def call(qualified: str, args: dict | None = None, **annotations) -> ToolCall:
    server, _, tool = qualified.partition(".")
    return ToolCall(server, tool, args or {}, annotations)


def verdict(policy: Policy, c: ToolCall) -> str:
    return policy.evaluate(c).verdict.value
