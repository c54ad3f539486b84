"""Votes on the page (headless Chromium): a held call's card shows the votes so far and follows a
vote cast elsewhere (another page, the CLI) without a reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_page_browser import card_of
from test_web_browser import approval_page, browser_page

from signoff.approvals.broker import Broker
from signoff.model import ApprovalRequirements, Decision, Identity, ToolCall, Verdict

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]


async def test_a_card_follows_the_votes_cast_elsewhere(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*'\n")
    broker = Broker()
    held_id = broker.issue_retry(ToolCall("shop", "pay", {"amount": 5}, identity=Identity("m", "a", "ann")),
                                 Decision(Verdict.ASK, "pays", "r", 300, approval=ApprovalRequirements(2)), "hash")
    plain = broker.issue_retry(ToolCall("shop", "pay", {"amount": 6}), Decision(Verdict.ASK, "pays", "r", 300), "hash")
    async with approval_page(policy) as url, browser_page() as page:
        card = await card_of(page, url, held_id)
        votes = card.locator(".votes")
        assert await votes.inner_text() == "Votes: no approvals yet (0 of 2)"
        broker.decide(held_id, True, person="alice", roles=("approver",), channel="cli")
        await page.wait_for_function(  # pushed by the event stream: no reload
            "id => document.querySelector(`#call-${id} .votes`).textContent.includes('approved by alice (1 of 2)')",
            arg=held_id, timeout=15000)
        assert await page.locator(f"#call-{plain} .votes").is_hidden()
