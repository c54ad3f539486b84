"""In team mode a proxy offers no self-approval: the client's own dialog (whose user is the agent's)
is not asked; a named person decides, and the decision names them."""

from __future__ import annotations

from pathlib import Path

import anyio
import mcp_types as types
import pytest

from conftest import connect, fake_server, through_signoff
from signoff.approvals.broker import Broker
from signoff.team.users import People
from test_approval_e2e import call_while, policy_file
from test_team_users import PASSWORD

pytestmark = pytest.mark.anyio


async def test_the_clients_dialog_is_not_asked_in_team_mode(tmp_path: Path) -> None:
    People(Broker().store).add("alice", ["approver"], PASSWORD)
    asked: list[str] = []

    async def dialog(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)  # would approve as "client user": nobody named
        return types.ElicitResult(action="accept", content={"decision": "approve"})

    async def alice_approves(held) -> None:
        Broker().decide(held.id, True, channel="web", by="user:alice")

    policy = policy_file(tmp_path, "hitl_policies:\n  - tool: '*.echo'\n")
    async with connect(through_signoff(fake_server(), "--policy", policy), elicitation_callback=dialog) as client:
        with anyio.fail_after(30):
            result = await call_while(client, "echo", {"text": "team"}, alice_approves)
    assert not result.is_error and asked == []
    [row] = Broker().store.audit_rows(decision="approved")
    assert row["decided_by"] == "user:alice" and row["channel"] == "web"
