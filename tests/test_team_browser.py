"""Team mode in headless Chromium: sign in with a TOTP code and approve a real proxy's held call,
enrol a passkey and sign in with it (Chromium's virtual authenticator, over the DevTools
protocol), and a person whose role may not decide sees the refusal on the page."""

from __future__ import annotations

from pathlib import Path

import anyio
import pyotp
import pytest

from conftest import connect, fake_server, through_signoff
from signoff.approvals.broker import Broker
from signoff.team.users import People
from test_page_browser import held
from test_team_users import PASSWORD
from test_web_browser import POLICY, approval_page, browser_page

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]


def base_of(url: str) -> str:
    """The page as http://localhost:PORT: WebAuthn wants a domain, not an IP address, as its RP id."""
    port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    return f"http://localhost:{port}"


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


async def sign_in_with_totp(page, base: str, name: str, secret: str) -> None:
    await page.goto(base + "/")
    assert page.url == base + "/signin"  # no session: sent to sign in
    await page.locator('input[name="name"]').fill(name)
    await page.locator('input[name="password"]').fill(PASSWORD)
    await page.locator('input[name="totp"]').fill(pyotp.TOTP(secret).now())
    await page.locator("#signin button[type=submit]").click()
    await page.locator("#who-name").wait_for(timeout=15000)
    assert await page.locator("#who-name").inner_text() == f"signed in as {name}"


async def test_sign_in_with_totp_then_approve_a_proxys_held_call(tmp_path: Path, policy: Path) -> None:
    people = People(Broker().store)
    secret = people.add("alice", ["approver"], PASSWORD)
    target = tmp_path / "approved.txt"
    async with (
        approval_page(policy) as url,
        browser_page() as page,
        connect(through_signoff(fake_server(), "--policy", str(policy))) as client,
    ):
        base = base_of(url)
        await page.goto(base + "/signin")
        await page.locator('input[name="name"]').fill("alice")
        await page.locator('input[name="password"]').fill("not the password")
        await page.locator('input[name="totp"]').fill("000000")
        await page.locator("#signin button[type=submit]").click()
        message = page.locator("#signin-message")
        await message.wait_for(state="visible", timeout=15000)
        assert "wrong name or password" in await message.inner_text()
        await sign_in_with_totp(page, base, "alice", secret)
        results = []
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                results.append(await client.call_tool("write_file", {"path": str(target), "content": "by alice"}))

            tg.start_soon(call)
            item = page.locator("li.held")
            await item.wait_for(timeout=15000)
            await item.locator("button.approve").click()
        assert not results[0].is_error and target.read_text() == "by alice"
        [row] = [r for r in Broker().store.audit_rows(decision="approved")]
        assert row["decided_by"] == "user:alice" and row["channel"] == "web"


async def test_enrol_a_passkey_and_sign_in_with_it(policy: Path) -> None:
    broker = Broker()
    people = People(broker.store)
    people.add("carol", ["approver"], PASSWORD, totp=False)
    enrolment = people.new_enrolment("carol")
    held_id = held(broker)
    async with approval_page(policy) as url, browser_page() as page:
        base = base_of(url)
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("WebAuthn.enable")
        await cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                }
            },
        )
        await page.goto(f"{base}/enrol/{enrolment}")
        await page.locator("#enrol").click()
        message = page.locator("#signin-message")
        await message.wait_for(state="visible", timeout=15000)
        assert "Passkey added" in await message.inner_text(), await message.inner_text()
        assert len(people.get("carol").passkeys) == 1
        await page.goto(f"{base}/enrol/{enrolment}")  # the link worked once
        assert "used or expired" in await page.content()

        await page.goto(base + "/")
        assert page.url == base + "/signin"
        await page.locator("#passkey").click()
        await page.locator("#who-name").wait_for(timeout=15000)
        assert await page.locator("#who-name").inner_text() == "signed in as carol"
        card = page.locator(f"#call-{held_id}")
        await card.wait_for(timeout=15000)
        await card.locator("button.approve").click()
        await page.locator("#decided li.approved").wait_for(timeout=15000)
        assert broker.get(held_id).decided_by == "user:carol"


async def test_a_role_refusal_is_shown_on_the_page_and_who_else_is_looking(policy: Path) -> None:
    broker = Broker()
    people = People(broker.store)
    secret, alices = people.add("bob", ["finance"], PASSWORD), people.add("alice", ["approver"], PASSWORD)
    held_id = held(broker)
    async with approval_page(policy) as url, browser_page() as page:
        await sign_in_with_totp(page, base_of(url), "bob", secret)
        card = page.locator(f"#call-{held_id}")
        await card.wait_for(timeout=15000)
        await card.locator("button.approve").click()
        message = page.locator("#message")
        await message.wait_for(state="visible", timeout=15000)
        assert "only people with the role 'approver' may decide" in await message.inner_text()
        assert broker.get(held_id).status == "pending"
        other = await page.context.browser.new_context()  # alice, in another browser profile
        alice = await other.new_page()
        await sign_in_with_totp(alice, base_of(url), "alice", alices)
        await alice.locator(f"#call-{held_id}").wait_for(timeout=15000)
        viewers = card.locator(".viewers")
        await viewers.wait_for(state="visible", timeout=15000)  # bob's page polls every 5 s
        assert await viewers.inner_text() == "also looking: alice"
