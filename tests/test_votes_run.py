"""The two-person rule through a real `signoff run`: a call needing two finance approvals (not the
agent's owner) keeps waiting after one person's approval and runs after a second person's; the
owner's approval and a repeated approval by the same person do not count."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from conftest import connect
from test_identity_run import POLICY, client
from test_policy_run import wait_for_pending

from signoff.approvals.broker import Broker
from signoff.errors import VoteRefusedError

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def run_command(tmp_path: Path) -> list[str]:
    policy = tmp_path / "team.yaml"
    policy.write_text(POLICY)
    config = tmp_path / "signoff.yaml"
    config.write_text(f"servers:\n  files:\n    command: {sys.executable}\n    args: ['-m', 'signoff.testing']\n"
                      f"policy: {policy}\nmachine: laptop-ann\nagent: ann-agent\nowner: ann\n")
    return [sys.executable, "-m", "signoff", "run", "--config", str(config)]


async def test_a_call_needing_two_approvals_runs_after_the_second_person(tmp_path: Path, store_url) -> None:
    target = tmp_path / "doomed.txt"
    target.write_text("x")
    env = {"SIGNOFF_AGENT": "", "SIGNOFF_MACHINE": "", "SIGNOFF_OWNER": ""}
    results = []
    async with connect(run_command(tmp_path), env=env, client_info=client("claude-code")) as session:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                async def call() -> None:
                    results.append(await session.call_tool("delete_file", {"path": str(target)}))

                tg.start_soon(call)
                held = await wait_for_pending()
                broker = Broker()  # another connection than the proxy's, as a page or CLI has
                with pytest.raises(VoteRefusedError, match="not_self: ann owns this agent"):
                    broker.decide(held.id, True, person="ann", roles=("finance",), channel="web")
                first = broker.decide(held.id, True, person="fiona", roles=("finance",), channel="web")
                assert first.status == "pending" and first.progress == "approved by fiona (1 of 2)"
                with pytest.raises(VoteRefusedError, match="Fiona already approved"):
                    broker.decide(held.id, True, person="Fiona", roles=("finance",), channel="cli")
                assert broker.get(held.id).status == "pending" and target.exists()  # what the proxy waits on
                done = broker.decide(held.id, True, person="gus", roles=("finance", "approver"), channel="cli")
                assert done.status == "approved" and done.decided_by == "user:fiona, user:gus"
    assert not results[0].is_error and not target.exists()
    decisions = [(r["decision"], r["decided_by"]) for r in Broker().store.audit_rows() if r["held_id"] == held.id]
    assert decisions == [("held", decisions[0][1]), ("refused_vote", "user:ann"), ("approval_vote", "user:fiona"),
                         ("refused_vote", "user:Fiona"), ("approval_vote", "user:gus"),
                         ("approved", "user:fiona, user:gus"), ("forwarded", "signoff")]
    verified = await anyio.run_process([sys.executable, "-m", "signoff", "audit", "verify"], check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.fixture
def store_url() -> None:
    """SQLite only until the parametrised fixture (conftest, h/pg) lands: then this goes."""
    return
