"""The two-person rule through a real `signoff run`: a call needing two finance approvals (not the
agent's owner) keeps waiting after one person's approval and runs after a second person's; the
owner's approval and a repeated approval by the same person (another token) do not count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from conftest import connect
from signoff.approvals.broker import Broker
from signoff.team.users import People
from test_identity_run import POLICY, client
from test_policy_run import wait_for_pending
from test_team_users import PASSWORD

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def run_command(tmp_path: Path) -> list[str]:
    policy = tmp_path / "team.yaml"
    policy.write_text(POLICY)
    config = tmp_path / "signoff.yaml"
    config.write_text(
        f"servers:\n  files:\n    command: {sys.executable}\n    args: ['-m', 'signoff.testing']\n"
        f"policy: {policy}\nmachine: laptop-ann\nagent: ann-agent\nowner: ann\n"
    )
    return [sys.executable, "-m", "signoff", "run", "--config", str(config)]


async def test_a_call_needing_two_approvals_runs_after_the_second_person(tmp_path: Path, store_url) -> None:
    """Votes with `signoff approve --token` (real subprocesses, each its own store connection)."""
    people = People(Broker().store)
    for name, roles in (("ann", ["finance"]), ("fiona", ["finance"]), ("gus", ["finance", "approver"])):
        people.add(name, roles, PASSWORD)
    tokens = {name: people.new_token(name) for name in ("ann", "fiona", "gus")}
    second_fiona = people.new_token("fiona")
    target = tmp_path / "doomed.txt"
    target.write_text("x")
    env = {"SIGNOFF_AGENT": "", "SIGNOFF_MACHINE": "", "SIGNOFF_OWNER": ""}
    results = []

    async def approve(held_id: str, token: str) -> subprocess.CompletedProcess:
        return await anyio.run_process([sys.executable, "-m", "signoff", "approve", held_id, "--token", token], check=False)

    async with connect(run_command(tmp_path), env=env, client_info=client("claude-code")) as session:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    results.append(await session.call_tool("delete_file", {"path": str(target)}))

                tg.start_soon(call)
                held = await wait_for_pending()
                own = await approve(held.id, tokens["ann"])
                assert own.returncode == 5 and b"not_self: ann owns this agent" in own.stderr
                first = await approve(held.id, tokens["fiona"])
                assert first.returncode == 0, first.stderr
                assert first.stdout.decode().strip() == f"pending {held.id} files.delete_file: approved by fiona (1 of 2)"
                again = await approve(held.id, second_fiona)  # fiona's other token
                assert again.returncode == 5 and b"fiona already approved" in again.stderr
                assert Broker().get(held.id).status == "pending" and target.exists()  # what the proxy waits on
                done = await approve(held.id, tokens["gus"])
                assert done.returncode == 0 and done.stdout.decode().startswith(f"approved {held.id}")
    assert not results[0].is_error and not target.exists()
    decisions = [(r["decision"], r["decided_by"]) for r in Broker().store.audit_rows() if r["held_id"] == held.id]
    assert decisions == [
        ("held", decisions[0][1]),
        ("refused_vote", "user:ann"),
        ("approval_vote", "user:fiona"),
        ("refused_vote", "user:fiona"),
        ("approval_vote", "user:gus"),
        ("approved", "user:fiona, user:gus"),
        ("forwarded", "signoff"),
    ]
    verified = await anyio.run_process([sys.executable, "-m", "signoff", "audit", "verify"], check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
