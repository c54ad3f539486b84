"""`signoff policy replay`: a candidate policy over recorded calls, before enforcing it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from signoff.approvals.audit import AuditLog, entry
from signoff.approvals.store import open_store
from signoff.cli.main import app
from signoff.model import ToolCall
from signoff.policy.engine import Policy
from signoff.policy.replay import replay


def record(decision: str, tool: str, args: dict, channel: str = "policy") -> None:
    server, _, name = tool.partition(".")
    open_store().append_audit(entry(ToolCall(server, name, args), decision, channel=channel, by="policy"))


def seed() -> None:
    record("allowed", "fs.read_file", {"path": "/a"})
    record("allowed", "fs.write_file", {"path": "/etc/hosts"})
    record("observed", "fs.delete_file", {"path": "/tmp/x"})
    record("held", "mail.send_email", {"to": "a@b.com"})
    record("approved", "mail.send_email", {"to": "a@b.com"}, channel="web")  # a follow-up row: not replayed
    record("denied", "shell.run", {"cmd": "rm -rf /"})


def test_replay_reports_what_would_change() -> None:
    seed()
    stricter = Policy.from_text(
        "hitl_policies:\n  - tool: 'fs.write_file'\n    condition: \"args.path.startsWith('/etc')\"\n    decision: deny\n"
        "  - action: file_delete\n  - action: send_email\n  - tool: 'shell.*'\n    decision: deny\n",
        source="p.yaml",
    )
    changes, counts = replay(stricter, AuditLog(open_store()).query())
    assert [(c.tool, c.was, c.now) for c in changes] == [("fs.write_file", "allow", "deny")]
    assert counts["ask→ask"] == 2 and counts["allow→allow"] == 1 and counts["deny→deny"] == 1


def test_replay_cli_summary_and_json(tmp_path: Path) -> None:
    seed()
    loose = tmp_path / "loose.yaml"
    loose.write_text("hitl_policies: []\n")
    runner = CliRunner()
    result = runner.invoke(app, ["policy", "replay", str(loose)])
    assert result.exit_code == 0, result.output
    assert "5 recorded calls replayed; 3 would change" in result.output
    assert "fs.delete_file: ask -> ALLOW" in result.output
    as_json = runner.invoke(app, ["policy", "replay", str(loose), "--json", "--tool", "mail.*"])
    data = json.loads(as_json.output)
    assert [c["tool"] for c in data["changes"]] == ["mail.send_email"] and data["counts"] == {"ask→allow": 1}
    bad = runner.invoke(app, ["policy", "replay", str(loose), "--since", "yesterday-ish"])
    assert bad.exit_code == 2


def test_observed_calls_compare_like_with_like() -> None:
    """In observe mode a call the policy would hold is recorded as `observed` then `allowed` (it ran):
    replaying the same policy must report no change, not "allow -> ASK"."""
    store = open_store()
    c = ToolCall("fs", "delete_file", {"path": "/tmp/x"})
    store.append_audit(entry(c, "observed", by="policy", reason="would be held: deletes files"))
    store.append_audit(entry(c, "allowed", by="policy", reason="observe mode"))
    remembered = ToolCall("mail", "send_email", {"to": "a@b.com"})
    store.append_audit(entry(remembered, "allowed", by="remembered:r-1", reason="remembered approval r-1"))
    same = Policy.from_text("hitl_policies:\n  - action: file_delete\n  - action: send_email\n", source="p.yaml")
    changes, counts = replay(same, AuditLog(open_store()).query())
    assert changes == [] and counts == {"ask→ask": 2}
