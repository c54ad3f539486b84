"""The page in headless Chromium: a held call whose proxy is killed (-9) turns into a greyed
"proxy gone" card that cannot be approved, without anything else changing in the store."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from held_calls import POLICY, WAIT, RawClient, decisions, held_call
from signoff.approvals.broker import Broker
from test_page_browser import card_of, until
from test_web_browser import approval_page, browser_page

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]


async def test_the_card_turns_proxy_gone_after_kill_9_and_cannot_be_approved(tmp_path: Path) -> None:
    (tmp_path / "ui").mkdir()
    policy = tmp_path / "ui" / "policy.yaml"
    policy.write_text(POLICY)
    proxy = RawClient(tmp_path)
    try:
        proxy.call(1, "echo", {"text": "rm -rf /"})
        held = await anyio.to_thread.run_sync(held_call)
        async with approval_page(policy) as url, browser_page() as page:
            card = await card_of(page, url, held.id)
            assert await card.locator(".approve").is_enabled()
            os.kill(proxy.proc.pid, signal.SIGKILL)
            await anyio.to_thread.run_sync(proxy.proc.wait, WAIT)

            async def greyed() -> bool:
                return "gone" in (await card.get_attribute("class") or "")

            await until(greyed)
            text = await card.locator(".gone-reason").inner_text()
            assert text.startswith("proxy gone: cannot be approved.") and "Nothing ran" in text
            for button in (".approve", ".deny", ".edit"):
                assert await card.locator(button).is_disabled()
            assert await page.locator("#count").inner_text() == "0"
            assert Broker().get(held.id).status == "abandoned"
            assert decisions(held.id) == ["held", "abandoned"]
            await card.locator(".dismiss").click()
            await until(lambda: _gone(card))
    finally:
        proxy.close()


async def _gone(card) -> bool:
    return await card.count() == 0
