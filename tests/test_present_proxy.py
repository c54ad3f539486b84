"""Through the real proxy: server-filesystem behind `signoff run`, an SDK client writing a file.
The proxy reads the current file (inside the directory the server was given), and the held row,
`signoff pending` and the client's own dialog all start with the path and the diff."""

from __future__ import annotations

from pathlib import Path

import anyio
import mcp.types as types
import pytest
from typer.testing import CliRunner

from conftest import connect, npm_server, through_signoff
from signoff.approvals.broker import Broker
from signoff.cli.main import app
from test_policy_run import wait_for_pending

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_a_held_write_shows_the_diff_the_proxy_read(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    target = root / "app.yaml"
    target.write_text("name: billing\nreplicas: 2\ndebug: false\n")
    outside = tmp_path / "outside.yaml"
    outside.write_text("SECRET: do-not-show\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - action: file_write\n")
    asked: list[str] = []

    async def dialog(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="cancel")  # dismissed: the person decides elsewhere

    seen: dict[str, object] = {}

    async def look_and_approve() -> None:
        held = await wait_for_pending()
        seen["held"] = held
        seen["pending"] = CliRunner().invoke(app, ["pending"]).stdout
        Broker().decide(held.id, True, by="test")

    command = through_signoff(npm_server("server-filesystem", str(root)), "--policy", str(policy))
    async with connect(command, elicitation_callback=dialog) as client:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(look_and_approve)
                result = await client.call_tool(
                    "write_file", {"path": str(target), "content": "name: billing\nreplicas: 5\ndebug: false\n"}
                )
    assert not result.is_error and "replicas: 5" in target.read_text()
    held = seen["held"]
    assert held.presentation["headline"] == f"Write {target} (+1 −1 lines)"
    assert held.presentation["preview"]["kind"] == "diff"
    assert "-replicas: 2" in held.presentation["preview"]["text"] and "+replicas: 5" in held.presentation["preview"]["text"]
    assert held.actions == ("file_write",)
    first = "\n".join(str(seen["pending"]).splitlines()[:6])
    assert str(target) in first and "-replicas: 2" in first and "+replicas: 5" in first, seen["pending"]
    assert asked, "the client's dialog was not shown"
    dialog_top = "\n".join(asked[0].splitlines()[:8])
    assert f"It would: Write {target} (+1 −1 lines)" in dialog_top and "│ -replicas: 2" in dialog_top

    # a path outside the server's directory: the proxy does not read it, and says so
    async def deny() -> None:
        held = await wait_for_pending()
        seen["outside"] = held
        Broker().decide(held.id, False, by="test")

    async with connect(command) as client:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(deny)
                await client.call_tool("write_file", {"path": str(outside), "content": "x\n"})
    shown = seen["outside"].presentation
    assert "do-not-show" not in str(shown) and "outside the directories the server was given" in str(shown)
