"""The approval page in real headless Chromium (Playwright), with a real proxy and MCP client."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from conftest import connect, fake_server, free_port, through_signoff

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POLICY = "hitl_policies:\n  - tool: '*.write_file'\n    reason: writing files needs approval\n"


@asynccontextmanager
async def approval_page(policy: Path) -> AsyncIterator[str]:
    """`signoff ui` on a free port; yields the URL with its token once it listens."""
    port = free_port()
    proc = await anyio.open_process(
        [sys.executable, "-m", "signoff", "ui", "--port", str(port), "--policy", str(policy)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        reader = BufferedByteReceiveStream(proc.stderr)
        with anyio.fail_after(30):
            while not (match := re.search(r"(http://\S+token=\S+)", (await reader.receive_until(b"\n", 1 << 16)).decode())):
                pass
        url = match.group(1)
        with anyio.fail_after(30):  # printed just before uvicorn binds: wait until it answers
            while True:
                try:
                    await anyio.connect_tcp("127.0.0.1", port)
                    break
                except OSError:
                    await anyio.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        with anyio.fail_after(10):
            await proc.wait()


@asynccontextmanager
async def browser_page(**options):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run must install it")
        pytest.skip("chromium not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield await browser.new_page(**options)
        finally:
            await browser.close()


async def test_held_call_appears_live_and_a_click_approves_it(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    target = tmp_path / "approved.txt"
    async with (
        approval_page(policy) as url,
        browser_page() as page,
        connect(through_signoff(fake_server(), "--policy", str(policy))) as client,
    ):
        await page.goto(url)
        assert await page.title() == "signoff"
        results = []
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                results.append(await client.call_tool("write_file", {"path": str(target), "content": "via the page"}))

            tg.start_soon(call)
            item = page.locator("li.held")
            await item.wait_for(timeout=15000)  # pushed over SSE: no reload
            assert await page.title() == "(1) signoff"
            assert "signoff-testing.write_file" in await item.locator(".tool").inner_text()
            assert "via the page" in await item.locator(".args").inner_text()
            await page.screenshot(path=str(tmp_path / "queue.png"))
            if os.environ.get("SIGNOFF_SCREENSHOT"):
                shutil.copy(tmp_path / "queue.png", os.environ["SIGNOFF_SCREENSHOT"])
            await item.locator("button.approve").click()
        assert not results[0].is_error and target.read_text() == "via the page"
        await page.locator("li.held").wait_for(state="detached", timeout=15000)


async def test_deny_with_reason_and_approve_edited_arguments(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async with (
        approval_page(policy) as url,
        browser_page() as page,
        connect(through_signoff(fake_server(), "--policy", str(policy))) as client,
    ):
        await page.goto(url)
        results = []
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                results.append(await client.call_tool("write_file", {"path": str(tmp_path / "a"), "content": "x"}))

            tg.start_soon(call)
            item = page.locator("li.held")
            await item.wait_for(timeout=15000)
            await item.locator("input.deny-reason").fill("write to b instead")
            await item.locator("button.deny").click()
        assert results[0].is_error and "write to b instead" in results[0].content[0].text

        edited = tmp_path / "b"
        async with anyio.create_task_group() as tg:

            async def call2() -> None:
                results.append(await client.call_tool("write_file", {"path": str(tmp_path / "a"), "content": "x"}))

            tg.start_soon(call2)
            item = page.locator("li.held")
            await item.wait_for(timeout=15000)
            assert not await item.locator(".editor").is_visible()  # hidden until asked for
            assert not await page.locator("label.totp").is_visible()  # no TOTP configured
            await item.locator("button.edit").click()
            await item.locator(".tab-raw").click()  # the form built from the schema comes first
            box = item.locator("textarea.edited")
            await box.fill("{not json")
            await item.locator("button.approve-edited").click()
            assert "Not valid JSON" in await item.locator(".edit-error").inner_text()
            await box.fill(f'{{"path": "{edited}", "content": "edited"}}')
            await item.locator("button.approve-edited").click()
        assert not results[1].is_error and edited.read_text() == "edited" and not (tmp_path / "a").exists()


async def test_run_ui_starts_the_page_in_the_background_once(tmp_path: Path, signoff_home: Path) -> None:
    import signal

    from signoff.web.server import ensure_running, running

    port = free_port()
    url = ensure_running(port)
    assert url.startswith(f"http://127.0.0.1:{port}/?token=")
    pid = int((signoff_home / "ui.pid").read_text())
    try:
        with anyio.fail_after(30):
            while not running(port):
                await anyio.sleep(0.05)
        assert ensure_running(port) == url  # already running: nothing new is started
        assert int((signoff_home / "ui.pid").read_text()) == pid
    finally:
        os.kill(pid, signal.SIGTERM)
