"""A session's history (shown by `watch`, `pending --json`, the page) lists each earlier call once.

Before: an approved call was recorded when its hold ended *and* again when the upstream
answered, so every approval appeared twice in the next held call's history.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import connect, through_signoff, time_server
from signoff.approvals.broker import Broker
from test_approval_e2e import call_while, policy_file

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

HOLD_TIME = "hitl_policies:\n  - tool: 'time.get_current_time'\n"


async def test_watch_history_lists_an_approved_call_once(tmp_path: Path) -> None:
    command = through_signoff(time_server(), "--policy", policy_file(tmp_path, HOLD_TIME), "--name", "time")
    async with connect(command) as client:
        await client.call_tool(
            "convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Europe/Paris"}
        )  # allowed

        async def approve(held) -> None:
            Broker().decide(held.id, True)

        first = await call_while(client, "get_current_time", {"timezone": "UTC"}, approve)
        assert not first.is_error
        decided: list = []

        async def look_then_deny(held) -> None:
            decided.append(held)
            Broker().decide(held.id, False)

        await call_while(client, "get_current_time", {"timezone": "Asia/Tokyo"}, look_then_deny)
    (second,) = decided
    assert [(h["tool"], h.get("outcome")) for h in second.session_history] == [
        ("time.convert_time", "allowed"),
        ("time.get_current_time", "approved"),
    ]
