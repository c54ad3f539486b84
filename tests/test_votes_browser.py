"""Votes on the page (headless Chromium): a held call's card shows the votes so far and follows a
vote cast elsewhere (another page, the CLI) without a reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.approvals.broker import Broker
from signoff.model import ApprovalRequirements, Decision, Identity, ToolCall, Verdict
from test_page_browser import card_of
from test_web_browser import approval_page, browser_page

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]


async def test_a_card_follows_the_votes_cast_elsewhere(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*'\n")
    broker = Broker()
    held_id = broker.issue_retry(
        ToolCall("shop", "pay", {"amount": 5}, identity=Identity("m", "a", "ann")),
        Decision(Verdict.ASK, "pays", "r", 300, approval=ApprovalRequirements(2)),
        "hash",
    )
    plain = broker.issue_retry(ToolCall("shop", "pay", {"amount": 6}), Decision(Verdict.ASK, "pays", "r", 300), "hash")
    async with approval_page(policy) as url, browser_page() as page:
        card = await card_of(page, url, held_id)
        votes = card.locator(".votes")
        assert await votes.inner_text() == "Votes: no approvals yet (0 of 2)"
        broker.decide(held_id, True, person="alice", roles=("approver",), channel="cli")
        await page.wait_for_function(  # pushed by the event stream: no reload
            "id => document.querySelector(`#call-${id} .votes`).textContent.includes('approved by alice (1 of 2)')",
            arg=held_id,
            timeout=15000,
        )
        assert await page.locator(f"#call-{plain} .votes").is_hidden()


async def test_a_two_person_approval_in_two_browser_profiles(tmp_path: Path) -> None:
    """alice and bob, signed in in two browser contexts, approve a real proxy's call needing two:
    it waits after alice's click (both cards say so) and runs after bob's."""
    import anyio

    from conftest import connect, fake_server, through_signoff
    from signoff.team.users import People
    from test_team_browser import base_of, sign_in_with_totp
    from test_team_users import PASSWORD

    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*.write_file'\n    quorum: 2\n")
    people = People(Broker().store)
    secrets_ = {name: people.add(name, ["approver"], PASSWORD) for name in ("alice", "bob")}
    target = tmp_path / "approved.txt"
    results = []
    async with (
        approval_page(policy) as url,
        browser_page() as alice,
        connect(through_signoff(fake_server(), "--policy", str(policy))) as client,
    ):
        base = base_of(url)
        other = await alice.context.browser.new_context()  # bob, in another browser profile
        bob = await other.new_page()
        await sign_in_with_totp(alice, base, "alice", secrets_["alice"])
        await sign_in_with_totp(bob, base, "bob", secrets_["bob"])
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                results.append(await client.call_tool("write_file", {"path": str(target), "content": "by two"}))

            tg.start_soon(call)
            mine, theirs = alice.locator("li.held"), bob.locator("li.held")
            await mine.wait_for(timeout=15000)
            assert await mine.locator(".votes").inner_text() == "Votes: no approvals yet (0 of 2)"
            await mine.locator("button.approve").click()
            message = alice.locator("#message")
            await message.wait_for(state="visible", timeout=15000)
            assert "Your vote counted" in await message.inner_text()
            assert await mine.locator(".votes").inner_text() == "Votes: approved by alice (1 of 2)"
            assert not results and not target.exists()  # one approval: the call still waits
            await bob.wait_for_function(
                "() => (document.querySelector('li.held .votes') || {}).textContent === 'Votes: approved by alice (1 of 2)'",
                timeout=15000,
            )
            await theirs.locator("button.approve").click()
            await bob.locator("#decided li.approved").wait_for(timeout=15000)
        assert not results[0].is_error and target.read_text() == "by two"
        await mine.wait_for(state="detached", timeout=15000)  # alice's page: the call is no longer waiting
        await other.close()
    [row] = list(Broker().store.audit_rows(decision="approved"))
    assert row["decided_by"] == "user:alice, user:bob" and row["channel"] == "web"
