"""The queue commands: exit codes, tables and --json, concurrent deciders, kill/resume, rules, audit."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff import paths
from signoff.approvals.audit import AuditLog
from signoff.approvals.broker import Broker
from signoff.approvals.store import open_store
from signoff.cli.main import app
from signoff.model import Decision, ToolCall, Verdict

SRC = str(Path(__file__).resolve().parents[1] / "src")
ASK = Decision(Verdict.ASK, "writes need approval", rule="hitl_policies[0]")
CALL = ToolCall("fs", "write_file", {"path": "/tmp/a", "content": "hello"}, session="s1", client="claude-code")


@pytest.fixture
def broker(signoff_home: Path) -> Broker:
    return Broker(open_store())


def signoff(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_pending_table_and_json(broker: Broker) -> None:
    assert signoff("pending") == (0, "no held calls\n", "")
    held_id = broker.issue_retry(CALL, ASK)
    code, out, _ = signoff("pending")
    assert code == 0
    first, headline, *rest = out.splitlines()  # who and when, then what the call does, then why and the arguments
    assert first.startswith(held_id) and "fs.write_file" in first and "claude-code" in first and " left" in first
    assert "/tmp/a" in headline
    assert any('"path": "/tmp/a"' in line for line in rest) and any(ASK.reason in line for line in rest)
    code, out, _ = signoff("pending", "--json")
    (item,) = json.loads(out)
    assert (item["id"], item["tool"], item["arguments"], item["status"]) == (
        held_id,
        "write_file",
        dict(CALL.arguments),
        "pending",
    )


def test_approve_deny_exit_codes(broker: Broker) -> None:
    held_id = broker.issue_retry(CALL, ASK)
    code, out, err = signoff("approve", held_id, "--reason", "fine")
    assert code == 0 and out.startswith(f"approved {held_id} fs.write_file (fine)")
    held = broker.get(held_id)
    assert (held.status, held.channel, held.decision_reason) == ("approved", "cli", "fine")
    code, _, err = signoff("deny", held_id)
    assert code == 2 and f"{held_id} was already approved" in err and "first decision wins" in err
    code, _, err = signoff("approve", "h-nope00")
    assert code == 1 and "no held call h-nope00" in err
    other = broker.issue_retry(ToolCall("fs", "delete", {"path": "/"}), ASK)
    code, out, _ = signoff("deny", other, "-r", "never the root")
    assert code == 0 and broker.get(other).decision_reason == "never the root"


def test_approve_with_edited_arguments_and_bad_json(broker: Broker) -> None:
    held_id = broker.issue_retry(CALL, ASK)
    code, _, err = signoff("approve", held_id, "--arguments", "[1]")
    assert code == 2 and "JSON object" in err
    code, _, _ = signoff("approve", held_id, "--arguments", '{"path": "/tmp/b"}')
    assert code == 0 and broker.get(held_id).edited_arguments == {"path": "/tmp/b"}


DECIDE = """
import os, sys, time
from pathlib import Path
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
os.execv(sys.executable, [sys.executable, "-m", "signoff", sys.argv[3], sys.argv[1]])
"""


def test_two_processes_approving_and_denying_at_once_exactly_one_wins(broker: Broker, tmp_path: Path) -> None:
    held_id = broker.issue_retry(CALL, ASK)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DECIDE, held_id, str(go), verb],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for verb in ("approve", "deny")
    ]
    go.touch()
    results = [(p.wait(timeout=60), *p.communicate(timeout=60)) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser_err = next(err for code, _, err in results if code == 2)
    assert "already" in loser_err and "first decision wins" in loser_err
    assert broker.get(held_id).status in ("approved", "denied")


def test_kill_and_resume(broker: Broker) -> None:
    held_id = broker.issue_retry(CALL, ASK)
    code, out, _ = signoff("kill", "--reason", "runaway agent")
    assert code == 0 and "kill switch ON" in out and "(1 held calls denied)" in out
    assert broker.get(held_id).status == "killed" and broker.get(held_id).decision_reason == "runaway agent"
    state = Broker(open_store()).kill_state()
    assert state.on and state.reason == "runaway agent"
    code, out, _ = signoff("resume")
    assert code == 0 and "off" in out and not Broker(open_store()).kill_state().on


def test_rules_list_json_policy_and_revoke(broker: Broker) -> None:
    assert signoff("rules") == (0, "no remembered approvals\n", "")
    held_id = broker.issue_retry(CALL, ASK)
    code, out, _ = signoff("approve", held_id, "--remember", "args")
    assert code == 0 and "remembered: args" in out
    (rule,) = broker.remembered()
    code, out, _ = signoff("rules")
    assert rule.id in out and "these arguments" in out and "fs.write_file" in out
    code, out, _ = signoff("rules", "--json")
    assert json.loads(out)[0]["id"] == rule.id
    code, out, _ = signoff("rules", "--policy")
    assert out.startswith("hitl_policies:") and "decision: allow" in out and "args ==" in out
    code, out, _ = signoff("rules", "revoke", rule.id)
    assert code == 0 and f"revoked {rule.id}" in out and broker.remembered_match(CALL) is None
    assert signoff("rules", "revoke", rule.id)[0] == 2
    assert signoff("rules", "revoke", "r-000000")[0] == 1
    code, out, _ = signoff("rules", "--all")
    assert rule.id in out
    assert signoff("approve", broker.issue_retry(CALL, ASK), "--remember", "forever")[0] == 2


def test_audit_list_filters_and_json(broker: Broker) -> None:
    log = AuditLog(broker.store)
    log.append(ToolCall("fs", "read_file", {"path": "/a"}), "allowed", duration_ms=3)
    log.append(ToolCall("git", "push", {}), "upstream_error", reason="remote hung up")
    broker.decide(broker.issue_retry(CALL, ASK), False, reason="no")
    code, out, _ = signoff("audit")
    assert code == 0 and len(out.splitlines()) == 5  # header + 4 rows
    code, out, _ = signoff("audit", "--json", "--tool", "fs.*")
    assert [(r["tool"], r["decision"]) for r in json.loads(out)] == [
        ("read_file", "allowed"),
        ("write_file", "held"),
        ("write_file", "denied"),
    ]
    code, out, _ = signoff("audit", "--json", "--decision", "upstream_error", "--since", "1h")
    assert [r["reason"] for r in json.loads(out)] == ["remote hung up"]
    code, out, _ = signoff("audit", "--json", "--since", "2999-01-01")
    assert json.loads(out) == []
    assert signoff("audit", "--decision", "maybe")[0] == 2
    assert signoff("audit", "--since", "yesterday")[0] == 2


def test_audit_verify_catches_tampering_and_deletion(broker: Broker) -> None:
    log = AuditLog(broker.store)
    for i in range(5):
        log.append(ToolCall("fs", "read_file", {"path": f"/{i}"}), "allowed")
    code, out, _ = signoff("audit", "verify")
    assert code == 0 and "5 rows" in out
    conn = sqlite3.connect(paths.db_path(), isolation_level=None)
    conn.execute("""UPDATE audit SET arguments = '{"path":"/etc/shadow"}' WHERE id = 2""")
    code, _, err = signoff("audit", "verify")
    assert code == 1 and "row 2 was changed" in err
    conn.execute("DELETE FROM audit WHERE id = 2")
    code, _, err = signoff("audit", "verify")
    assert code == 1 and "row 2 is missing (ids jump 1→3)" in err


def test_audit_export_jsonl_to_stdout_and_file(broker: Broker, tmp_path: Path) -> None:
    log = AuditLog(broker.store)
    for i in range(3):
        log.append(ToolCall("fs", "read_file", {"path": f"/{i}"}), "allowed")
    code, out, _ = signoff("audit", "export", "--jsonl")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == [1, 2, 3]
    target = tmp_path / "audit.jsonl"
    code, _, err = signoff("audit", "export", "--jsonl", str(target))
    assert code == 0 and "exported 3 rows" in err and len(target.read_text().splitlines()) == 3
    assert signoff("audit", "export")[0] == 2


def test_watch_command_reads_the_keyboard(broker: Broker) -> None:
    held_id = broker.issue_retry(CALL, ASK)
    result = CliRunner().invoke(app, ["watch"], input="a")  # input ends after the key: watch leaves
    assert result.exit_code == 0, result.output
    assert f"✔ approved {held_id}" in result.stdout
    assert broker.get(held_id).channel == "watch"


def test_approve_echoes_the_edited_arguments_it_applied(broker: Broker) -> None:
    held_id = broker.issue_retry(CALL, ASK)
    code, out, _ = signoff("approve", held_id, "--arguments", '{"path": "/tmp/b", "content": "hi\\u001b]52;c;x\\u0007"}')
    assert code == 0
    assert out.splitlines()[1] == 'with edited arguments: {"content": "hi\\u001b]52;c;x\\u0007", "path": "/tmp/b"}'
    assert broker.get(held_id).edited_arguments == {"path": "/tmp/b", "content": "hi\x1b]52;c;x\x07"}
