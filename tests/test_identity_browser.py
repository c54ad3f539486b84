"""The page's queue says who made a held call and what approval it needs (headless Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.approvals.broker import Broker
from signoff.model import ApprovalRequirements, Decision, Identity, ToolCall, Verdict
from test_page_browser import card_of
from test_web_browser import approval_page, browser_page

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]


async def test_a_card_names_agent_machine_owner_and_the_approval_needed(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*'\n")
    broker = Broker()
    needs = ApprovalRequirements(2, (("finance",),), True)
    team = broker.issue_retry(
        ToolCall("shop", "pay", {"amount": 5}, identity=Identity("laptop-ann", "ci\u202ebot", "ann")),
        Decision(Verdict.ASK, "pays", "r", 300, approval=needs),
        "hash",
    )
    plain = broker.issue_retry(ToolCall("shop", "pay", {"amount": 6}), Decision(Verdict.ASK, "pays", "r", 300), "hash")
    async with approval_page(policy) as url, browser_page() as page:
        card = await card_of(page, url, team)
        who = await card.locator(".who").inner_text()
        assert who == "agent ci\\u202ebot on laptop-ann (owner ann)"  # a client's bidi trick shows as an escape
        assert await card.locator(".needs").inner_text() == "Needs 2 approvals from finance; not the agent's owner"
        other = page.locator(f"#call-{plain}")
        assert await other.locator(".who").inner_text() == ""
        assert await other.locator(".needs").is_hidden()
