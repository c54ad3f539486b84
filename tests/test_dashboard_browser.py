"""The team dashboard in headless Chromium: two real proxies with different `--agent/--machine`
on one SIGNOFF_HOME hold calls; narrowing by agent shows only that agent's calls (and the URL
keeps the view, so it can be bookmarked); the Proxies tab lists both; a hostile agent name shows
as text."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from conftest import connect, fake_server, through_signoff
from signoff.approvals.broker import Broker
from signoff.model import Decision, Identity, ToolCall, Verdict
from test_page_browser import until
from test_web_browser import POLICY, approval_page, browser_page

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]

HOSTILE = "<img src=x onerror=alert(1)>\u202eevil"


def proxy(policy: Path, agent: str, machine: str) -> list[str]:
    return through_signoff(fake_server(), "--policy", str(policy), "--agent", agent, "--machine", machine)


async def test_narrow_the_queue_by_agent_bookmark_it_and_see_both_proxies(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    broker = Broker()
    evil = broker.issue_retry(
        ToolCall("files", "write_file", {"path": "/tmp/e"}, identity=Identity("box", HOSTILE, "")),
        Decision(Verdict.ASK, "writing", "r", 300),
        "hash",
    )
    async with (
        approval_page(policy) as url,
        browser_page() as page,
        connect(proxy(policy, "ci-bot", "build-1")) as ci,
        connect(proxy(policy, "dev", "laptop-ann")) as dev,
    ):
        results: dict[str, object] = {}
        async with anyio.create_task_group() as tg:
            for name, client in (("ci", ci), ("dev", dev)):

                async def call(name: str = name, client=client) -> None:
                    results[name] = await client.call_tool("write_file", {"path": str(tmp_path / f"{name}.txt"), "content": name})

                tg.start_soon(call)
            await page.goto(url)
            cards = page.locator("#queue li.held")
            try:
                await until(lambda: _count(cards, 3))
            except TimeoutError:
                print(
                    "DEBUG",
                    await cards.count(),
                    await page.locator("#message").inner_text(),
                    await page.evaluate("fetch('/api/queue').then(r => r.text())"),
                )
                raise

            await page.select_option('#narrow select[name="agent"]', "ci-bot")
            await until(lambda: _count(cards, 1))
            assert await cards.locator(".who").inner_text() == "agent ci-bot on build-1"
            assert "agent=ci-bot" in page.url
            assert await page.locator("#filtered-out").inner_text() == "2 more calls waiting outside this filter."

            await page.goto(page.url.replace("agent=ci-bot", "agent=dev"))  # a bookmarked view opens as it was
            await until(lambda: _count(cards, 1))
            assert await cards.locator(".who").inner_text() == "agent dev on laptop-ann"
            assert await page.locator('#narrow select[name="agent"]').input_value() == "dev"

            # the hostile name is a choice shown as text (escaped), never markup, and it narrows exactly
            labels = await page.locator('#narrow select[name="agent"] option').all_inner_texts()
            assert "<img src=x onerror=alert(1)>\\u202eevil" in labels
            assert await page.locator("img").count() == 0
            await page.select_option('#narrow select[name="agent"]', HOSTILE)
            await page.locator(f"#call-{evil}").wait_for(timeout=15000)
            await until(lambda: _count(cards, 1))
            await page.locator('nav button[data-tab="history"]').click()  # the same filter narrows the history
            audit = page.locator("#audit tbody tr")
            await until(lambda: _count(audit, 1))
            assert await audit.locator("td.agent").inner_text() == "<img src=x onerror=alert(1)>\\u202eevil@box"
            assert "view=history" in page.url and await page.locator("img").count() == 0

            await page.locator('nav button[data-tab="proxies"]').click()
            assert "view=proxies" in page.url
            rows = page.locator("#proxies tbody tr")
            await until(lambda: _count(rows, 2, at_least=True))
            shown = set()
            for i in range(await rows.count()):
                machine, agent = (await rows.nth(i).locator("td").all_inner_texts())[:2]
                shown.add((machine.split(" (host ")[0], agent, await rows.nth(i).locator("td.state").inner_text()))
            assert ("build-1", "ci-bot", "running") in shown and ("laptop-ann", "dev", "running") in shown

            await page.locator('nav button[data-tab="queue"]').click()
            await page.locator("#narrow-clear").click()
            await until(lambda: _count(cards, 3))
            assert "agent=" not in page.url
            for held_id in [await cards.nth(i).get_attribute("data-id") for i in range(3)]:
                if held_id != evil:
                    await page.locator(f"#call-{held_id} button.approve").click()
                    await page.locator(f"#call-{held_id}").wait_for(state="detached", timeout=15000)
        assert not any(r.is_error for r in results.values()), results
        assert (tmp_path / "ci.txt").read_text() == "ci" and (tmp_path / "dev.txt").read_text() == "dev"


async def _count(locator, n: int, *, at_least: bool = False) -> bool:
    found = await locator.count()
    return found >= n if at_least else found == n


async def test_team_mode_a_shared_filtered_link_opens_after_sign_in(tmp_path: Path) -> None:
    import pyotp

    from signoff.team.users import People
    from test_team_browser import base_of
    from test_team_users import PASSWORD

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    broker = Broker()
    people = People(broker.store)
    secret, bobs = people.add("alice", ["approver"], PASSWORD), people.add("bob", ["approver"], PASSWORD)
    held = {
        agent: broker.issue_retry(
            ToolCall("files", "write_file", {"path": f"/tmp/{agent}"}, identity=Identity(machine, agent, "")),
            Decision(Verdict.ASK, "writing", "r", 300),
            "hash",
        )
        for agent, machine in (("ci-bot", "build-1"), ("dev", "laptop-ann"))
    }
    async with approval_page(policy) as url, browser_page() as page:
        base = base_of(url)
        await page.goto(base + "/?agent=dev&view=queue")
        assert page.url.startswith(base + "/signin?next=")
        await page.locator('input[name="name"]').fill("alice")
        await page.locator('input[name="password"]').fill(PASSWORD)
        await page.locator('input[name="totp"]').fill(pyotp.TOTP(secret).now())
        await page.locator("#signin button[type=submit]").click()
        cards = page.locator("#queue li.held")
        await page.locator(f"#call-{held['dev']}").wait_for(timeout=15000)
        assert page.url.startswith(base + "/?agent=dev")
        assert (
            await cards.count() == 1
            and await page.locator("#filtered-out").inner_text() == "1 more call waiting outside this filter."
        )

        bob = await (await page.context.browser.new_context()).new_page()  # another person, another profile
        await bob.goto(base + "/signin?next=//example.com/")  # `next` never leaves the page
        await bob.locator('input[name="name"]').fill("bob")
        await bob.locator('input[name="password"]').fill(PASSWORD)
        await bob.locator('input[name="totp"]').fill(pyotp.TOTP(bobs).now())
        await bob.locator("#signin button[type=submit]").click()
        await bob.locator("#who-name").wait_for(timeout=15000)
        assert bob.url == base + "/"
