"""The approval page in headless Chromium: countdowns, final confirmations, the kill banner, schema
forms, rule removal, review links and the phone layout. Held calls are put in the shared store
directly (retry mode), so each test drives only the page."""

from __future__ import annotations

import os
import re
from pathlib import Path

import anyio
import pytest

from signoff.approvals.broker import Broker
from signoff.model import Decision, ToolCall, Verdict
from test_web_browser import approval_page, browser_page

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]

POLICY = (
    "hitl_policies:\n  - tool: '*.write_file'\n    reason: writing files needs approval\n"
    "  - action: database_write\n    tables: [users, orders]\n"
)
SCHEMA = {
    "type": "object",
    "required": ["path"],
    "properties": {
        "path": {"type": "string", "description": "where to write"},
        "count": {"type": "integer", "minimum": 1},
        "mode": {"type": "string", "enum": ["fast", "safe"]},
        "force": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}
SHOTS = os.environ.get("SIGNOFF_SCREENSHOT_DIR")


def held(
    broker: Broker,
    tool: str = "write_file",
    arguments: dict | None = None,
    *,
    timeout: float = 300,
    reason: str = "writing files needs approval",
    server: str = "filesystem",
    **call,
) -> str:
    return broker.issue_retry(
        ToolCall(
            server,
            tool,
            arguments or {"path": "/srv/app/config.yaml", "content": "debug: true\n"},
            session="s1",
            client="claude-code",
            **call,
        ),
        Decision(Verdict.ASK, reason, "hitl_policies[0]", timeout),
        "hash",
    )


async def card_of(page, url: str, held_id: str):
    """Open the page and wait for one held call's card."""
    await page.goto(url)
    card = page.locator(f"#call-{held_id}")
    await card.wait_for(timeout=15000)
    return card


async def until(check, timeout: float = 15) -> None:
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.05)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


async def test_countdown_is_visible_and_decreasing(policy: Path) -> None:
    broker = Broker()
    held(broker, timeout=600)
    async with approval_page(policy) as url, browser_page() as page:
        await page.goto(url)
        countdown = page.locator("li.held .countdown")
        await countdown.wait_for(timeout=15000)
        first = await countdown.inner_text()
        assert re.match(r"\d+:\d\d left to decide, then denied automatically", first), first

        def seconds(text: str) -> int:
            minutes, secs = re.match(r"(\d+):(\d\d)", text).groups()
            return int(minutes) * 60 + int(secs)

        async def moved() -> bool:
            return seconds(await countdown.inner_text()) < seconds(first)

        await until(moved, 5)
        assert 590 <= seconds(first) <= 600


async def test_a_decision_is_confirmed_as_final(policy: Path) -> None:
    broker = Broker()
    approve_id, deny_id = held(broker), held(broker, arguments={"path": "/tmp/\u202etxt.exe", "content": "x"})
    async with approval_page(policy) as url, browser_page() as page:
        card = await card_of(page, url, approve_id)
        await card.locator("button.approve").click()
        done = page.locator("#decided li.approved")
        await done.wait_for(timeout=15000)
        text = await done.inner_text()
        assert f"Approved: filesystem.write_file ({approve_id})" in text and "final" in text
        assert broker.get(approve_id).status == "approved"
        other = page.locator(f"#call-{deny_id}")
        shown = await other.locator(".facts").inner_text()
        assert "/tmp/\\u202etxt.exe" in shown and "\u202e" not in shown  # no right-to-left override at work
        await other.locator("input.deny-reason").fill("not that file")
        await other.locator("button.deny").click()
        await page.locator("#decided li.denied").wait_for(timeout=15000)
        assert "the agent is told" in await page.locator("#decided li.denied").inner_text()
        assert broker.get(deny_id).decision_reason == "not that file"
        assert await page.locator("li.held").count() == 0


async def test_kill_switch_shows_a_banner_and_the_queue_says_calls_are_refused(policy: Path) -> None:
    broker = Broker()
    async with approval_page(policy) as url, browser_page() as page:
        await page.goto(url)
        banner = page.locator("#kill-banner")
        assert not await banner.is_visible()
        broker.kill("incident 42")
        await banner.wait_for(state="visible", timeout=15000)
        assert "every tool call is being refused" in await banner.inner_text()
        assert "incident 42" in await banner.inner_text()
        assert await page.locator("#refusing").is_visible()
        if SHOTS:
            await page.screenshot(path=f"{SHOTS}/page-kill-switch.png")
        broker.resume()
        await banner.wait_for(state="hidden", timeout=15000)


async def test_arguments_are_edited_in_a_form_built_from_the_schema(policy: Path) -> None:
    broker = Broker()
    held_id = held(broker, "copy_file", {"path": "/a", "count": 2, "mode": "fast", "tags": ["x"]}, input_schema=SCHEMA)
    async with approval_page(policy) as url, browser_page() as page:
        card = await card_of(page, url, held_id)
        await card.locator("button.edit").click()
        form = card.locator(".schema-form")
        await form.wait_for(state="visible", timeout=5000)
        field = lambda name: form.locator(f'.field[data-name="{name}"]')  # noqa: E731
        assert await field("path").locator("input").input_value() == "/a"
        assert await field("mode").locator("select option:checked").inner_text() == "fast"
        assert "where to write" in await field("path").inner_text()
        await field("count").locator("input").fill("2.5")
        await field("path").locator("input").fill("")
        await card.locator("button.approve-edited").click()
        error = await card.locator(".edit-error").inner_text()
        assert "“path” is required by the tool." in error and "“count” must be a whole number, not 2.5." in error
        assert broker.get(held_id).status == "pending"
        await field("path").locator("input").fill("/b")
        await field("count").locator("input").fill("3")
        await field("mode").locator("select").select_option(label="safe")
        await field("force").locator("input").check()
        await field("tags").locator("button.add-item").click()
        await field("tags").locator("li input").nth(1).fill("y")
        if SHOTS:
            await card.screenshot(path=f"{SHOTS}/page-edit-form.png")
        await card.locator(".tab-raw").click()  # the raw JSON tab shows the same arguments
        assert '"count": 3' in await card.locator("textarea.edited").input_value()
        await card.locator(".tab-form").click()
        await card.locator("button.approve-edited").click()
        await page.locator("#decided li.approved").wait_for(timeout=15000)
    assert broker.get(held_id).edited_arguments == {"path": "/b", "count": 3, "mode": "safe", "force": True, "tags": ["x", "y"]}


async def test_removing_a_rule_asks_first(policy: Path) -> None:
    async with approval_page(policy) as url, browser_page() as page:
        await page.goto(url)
        await page.locator('nav button[data-tab="policies"]').click()
        rules = page.locator("#rules li.rule")
        await rules.first.wait_for(timeout=15000)
        assert await rules.count() == 2
        assert "tables:\n- users\n- orders" in await rules.nth(1).locator("pre").inner_text()  # lists as YAML
        if SHOTS:
            await page.screenshot(path=f"{SHOTS}/page-policies.png", full_page=True)
        answers = iter([False, True])
        asked = []

        async def on_dialog(dialog) -> None:
            asked.append(dialog.message)
            await (dialog.accept() if next(answers) else dialog.dismiss())

        page.on("dialog", on_dialog)
        await rules.first.locator("button.remove-rule").click()
        await until(lambda: _true(asked))
        assert "Remove rule 1?" in asked[0] and "write_file" in asked[0]
        assert policy.read_text() == POLICY  # dismissed: nothing removed
        await rules.first.locator("button.remove-rule").click()

        async def removed() -> bool:
            return "write_file" not in policy.read_text()

        await until(removed)
        await until(lambda: _count_is(rules, 1))
        await page.locator("#add-rule input[name=tool]").fill("pay.*")
        await page.locator("#add-rule input[name=condition]").fill("args.amount = 3")
        await page.locator("#add-rule button[type=submit]").click()
        error = page.locator("#rule-error")
        await error.wait_for(state="visible", timeout=15000)
        assert "'=' is not understood" in await error.inner_text()


async def _true(items: list) -> bool:
    return bool(items)


async def _count_is(locator, n: int) -> bool:
    return await locator.count() == n


async def test_phone_shows_one_whole_call_and_tables_scroll(policy: Path) -> None:
    broker = Broker()
    held_id = held(
        broker,
        arguments={
            "path": "/home/me/project/src/settings/production.yaml",
            "content": "database:\n  host: db.internal\n  password_file: /run/secrets/db\n" * 20,
            "mode": "overwrite",
            "create_dirs": True,
            "encoding": "utf-8",
        },
        annotations={"destructiveHint": True, "openWorldHint": False},
    )
    async with approval_page(policy) as url, browser_page(viewport={"width": 390, "height": 844}) as page:
        card = await card_of(page, url, held_id)
        box = await card.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert box["y"] >= 0 and box["y"] + box["height"] <= 844, box  # the whole call, buttons included
        for button in ("button.approve", "button.deny"):
            b = await card.locator(button).bounding_box()
            assert b is not None and b["y"] + b["height"] <= 844 and b["width"] >= 120
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        if SHOTS:
            await page.screenshot(path=f"{SHOTS}/page-queue-phone.png")
        await card.locator("button.approve").click()
        await page.locator("#decided li.approved").wait_for(timeout=15000)
        await page.locator('nav button[data-tab="history"]').click()
        await page.locator("#audit tbody tr").first.wait_for(timeout=15000)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # the page does not widen…
        wide = await page.evaluate(
            "(() => { const s = document.querySelector('.scroll'); return [s.scrollWidth, s.clientWidth]; })()"
        )
        assert wide[0] > wide[1]  # …the table scrolls inside its box
        await page.locator("#stats tbody tr").first.wait_for(timeout=15000)
        if SHOTS:
            await page.screenshot(path=f"{SHOTS}/page-history-phone.png")
        when = await page.locator("#audit tbody tr td.when").first.inner_text()
        assert "T" not in when and re.search(r"\d\d:\d\d", when)  # a readable time, not ISO


async def test_a_review_link_opens_only_its_call(policy: Path) -> None:
    from signoff.web.links import review_link

    broker = Broker()
    mine, other = held(broker), held(broker, arguments={"path": "/other"})
    async with approval_page(policy) as url, browser_page(viewport={"width": 390, "height": 844}) as page:
        base = url.split("/?")[0]
        await page.goto(review_link(base, mine))
        await page.locator("button[type=submit]").click()
        card = page.locator(f"#call-{mine}")
        await card.wait_for(timeout=15000)
        assert await page.locator("li.held").count() == 1 and not await page.locator(f"#call-{other}").count()
        assert not await page.locator("nav").is_visible() and not await page.locator("#kill").is_visible()
        await card.locator("button.approve").click()
        await page.locator("#decided li.approved").wait_for(timeout=15000)
        assert broker.get(mine).status == "approved" and broker.get(other).status == "pending"


async def test_desktop_screenshot_of_the_queue(policy: Path) -> None:
    """Three typical held calls at desktop width (README image when SIGNOFF_SCREENSHOT_DIR is set)."""
    broker = Broker()
    held(
        broker,
        "send_email",
        {
            "to": "cfo@partner-bank.com",
            "subject": "Wire instructions",
            "body": "Please wire 48,000 EUR to the account below today.",
        },
        server="gmail",
        reason="external emails need approval",
        annotations={"destructiveHint": False, "openWorldHint": True},
    )
    held(broker, annotations={"destructiveHint": True, "openWorldHint": False})
    held(
        broker,
        "run_command",
        {"command": "rm -rf ./build && make release", "cwd": "/home/me/project"},
        server="shell",
        reason="shell commands need approval",
        timeout=90,
    )
    async with approval_page(policy) as url, browser_page(viewport={"width": 1280, "height": 900}) as page:
        await page.goto(url)
        await until(lambda: _count_is(page.locator("li.held"), 3))
        assert await page.title() == "(3) signoff"
        risks = await page.locator("li.held .risk").all_inner_texts()
        assert risks == ["risk: medium", "risk: high", "risk: critical"]
        if SHOTS:
            await page.screenshot(path=f"{SHOTS}/page-queue-desktop.png", full_page=True)
