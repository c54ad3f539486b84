"""The page's card shows first what the call does (headline, facts, the diff), read from the
rendered page in headless Chromium; tool data is text, never markup. With
SIGNOFF_SCREENSHOT_DIR set, it also writes the README's screenshots (desktop and phone)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from signoff.approvals import filediff, present
from signoff.approvals.broker import Broker
from signoff.model import ToolCall
from signoff.policy.engine import Policy, PolicyContext
from test_web_browser import approval_page, browser_page

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]

SHOTS = os.environ.get("SIGNOFF_SCREENSHOT_DIR")
POLICY = (
    "internal_domains: [acme.com]\nhitl_policies:\n  - action: send_email\n    condition: recipient_is_external\n"
    "  - action: file_write\n  - action: shell\n"
)
SERVERS = {"gmail": "gmail", "filesystem": "filesystem", "commander": "desktop-commander"}


def hold(call: ToolCall) -> str:
    """As the proxy holds it: the policy decides, present.prepare reads the file, the broker stores."""
    policy = Policy.from_text(POLICY, source="<test>", context=PolicyContext(servers=SERVERS))
    decision = policy.evaluate(call)
    return Broker().issue_retry(call, decision, policy.hash, shown=present.prepare(call, decision, policy))


@pytest.fixture
def calls():
    project = Path(tempfile.mkdtemp(prefix="app-"))  # a short path, as in the README's pictures
    config = project / "deploy.yaml"
    config.write_text("service: billing\nreplicas: 2\nregion: eu-west-1\ndebug: false\nalerts: ops@acme.com\n")
    filediff.know_server("filesystem", ["npx", "@modelcontextprotocol/server-filesystem", str(project)], str(project))
    email = hold(
        ToolCall(
            "gmail",
            "send_email",
            {
                "to": ["cfo@partner-bank.com"],
                "cc": ["finance@acme.com"],
                "subject": "Wire instructions for invoice 2291",
                "body": "Hi,\n\nplease wire 48,000 EUR to the account below today.\nIBAN: DE89 3704 0044 0532 0130 00\n\nThanks",
            },
            session="s1",
            client="claude-code",
        )
    )
    write = hold(
        ToolCall(
            "filesystem",
            "write_file",
            {
                "path": str(config),
                "content": "service: billing\nreplicas: 6\nregion: eu-west-1\ndebug: true\nalerts: ops@acme.com\n",
            },
            session="s1",
            client="claude-code",
        )
    )
    shell = hold(
        ToolCall(
            "commander",
            "start_process",
            {"command": "rm -rf ./dist && git push --force origin main", "timeout_ms": 60000},
            session="s1",
            client="claude-code",
        )
    )
    yield {"email": email, "write": write, "shell": shell, "config": str(config)}
    filediff._PLACES.pop("filesystem", None)
    shutil.rmtree(project)


async def card_top(page, held_id: str) -> dict:
    card = page.locator(f"#call-{held_id}")
    await card.wait_for(timeout=15000)
    return await card.evaluate("""(card) => ({
        headline: card.querySelector('.headline').textContent,
        facts: [...card.querySelectorAll('.facts dt')].map((dt) => [dt.textContent, dt.nextElementSibling.textContent,
                                                                     dt.classList.contains('risky')]),
        added: [...card.querySelectorAll('.preview-text span.add')].map((s) => s.textContent),
        removed: [...card.querySelectorAll('.preview-text span.del')].map((s) => s.textContent),
        preview: card.querySelector('.preview-text').textContent,
        order: [...card.children].map((c) => c.className.split(' ')[0]).filter((c) => c && !c.startsWith('editor')),
        markup: card.querySelectorAll('.headline *, .facts dd b, .preview-text script, .preview-text img').length,
    })""")


async def test_the_top_of_each_card_says_what_the_call_does(tmp_path: Path, calls: dict) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async with approval_page(policy) as url, browser_page(viewport={"width": 1280, "height": 900}) as page:
        await page.goto(url)
        email = await card_top(page, calls["email"])
        assert email["headline"] == "Send email to cfo@partner-bank.com (external) and 1 more"
        assert email["facts"][:2] == [
            ["To", "cfo@partner-bank.com (external)", True],
            ["Cc", "finance@acme.com (internal)", False],
        ]
        assert "please wire 48,000 EUR" in email["preview"]
        write = await card_top(page, calls["write"])
        assert write["headline"] == f"Write {calls['config']} (+2 −2 lines)"
        assert write["removed"] == ["-replicas: 2", "-debug: false"] and write["added"] == ["+replicas: 6", "+debug: true"]
        shell = await card_top(page, calls["shell"])
        assert shell["headline"] == "Run: rm -rf ./dist && git push --force origin main"
        assert shell["facts"][0] == ["Command", "rm -rf ./dist && git push --force origin main", True]
        # what it does comes before the countdown, the reason and the arguments
        order = write["order"]
        assert (
            order.index("headline") < order.index("facts") < order.index("preview") < order.index("reason") < order.index("args")
        )
        assert email["markup"] == write["markup"] == 0
        if SHOTS:
            for name in ("email", "write", "shell"):
                await page.locator(f"#call-{calls[name]}").screenshot(path=f"{SHOTS}/held-{name}-desktop.png")


async def test_phone_shows_what_the_call_does_on_one_screen(tmp_path: Path, calls: dict) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async with approval_page(policy) as url, browser_page(viewport={"width": 390, "height": 844}) as page:
        await page.goto(url)
        for name in ("email", "write", "shell"):
            card = page.locator(f"#call-{calls[name]}")
            await card.wait_for(timeout=15000)
            await card.scroll_into_view_if_needed()
            top = await card_top(page, calls[name])
            assert top["headline"]
            for part in (".headline", ".facts", "button.approve"):
                box = await card.locator(part).first.bounding_box()
                assert box is not None and box["x"] + box["width"] <= 390, (name, part, box)
            wide = await page.evaluate(
                "[...document.querySelectorAll('.held *')].filter((e) => e.scrollWidth > e.clientWidth + 1 && "
                "getComputedStyle(e).overflowX === 'visible').map((e) => e.className)"
            )
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390, (name, wide)
            if SHOTS:
                await card.evaluate("(c) => c.scrollIntoView({block: 'start'})")
                await page.screenshot(path=f"{SHOTS}/held-{name}-phone.png")
