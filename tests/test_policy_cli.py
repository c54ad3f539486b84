"""`signoff policy check|explain`: summaries, one-line errors, exit codes 0 and 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from signoff.cli.main import app

runner = CliRunner()


def test_cli_check_ok_and_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "check", "balanced"])
    assert result.exit_code == 0, result.output
    assert "OK (13 rules" in result.output  # issue #11: the balanced preset covers the whole vocabulary


def test_cli_check_error_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hitl_policies:\n  - action: file_delete\n    scop: all\n")
    result = runner.invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:3: hitl_policies[0].scop: unknown key 'scop'" in result.output


def test_cli_explain_names_the_rule_and_why_others_did_not_match() -> None:
    result = runner.invoke(
        app, ["policy", "explain", "balanced", "--tool", "gmail.send_email", "--args", json.dumps({"to": "x@y.com"})]
    )
    assert result.exit_code == 0, result.output
    assert "decision: ASK" in result.output
    assert "hitl_policies[1] (send_email): MATCH (ask)" in result.output
    assert "hitl_policies[0] (file_delete): no - gmail.send_email does not look like action file_delete" in result.output


def test_cli_explain_bad_input_exit_2() -> None:
    assert runner.invoke(app, ["policy", "explain", "balanced", "--tool", "nodot"]).exit_code == 2
    assert runner.invoke(app, ["policy", "explain", "balanced", "--tool", "a.b", "--args", "{nope"]).exit_code == 2


def test_cli_explain_uses_the_catalog_and_shows_actions_and_facts() -> None:
    # the real server marks git_reset destructive: explain knows it without --annotations (issue #11)
    result = runner.invoke(app, ["policy", "explain", "balanced", "--tool", "git.git_reset", "--args", '{"repo_path": "/r"}'])
    assert result.exit_code == 0, result.output
    assert "decision: ASK" in result.output and "in signoff's catalog" in result.output
    shell = runner.invoke(
        app,
        [
            "policy",
            "explain",
            "balanced",
            "--tool",
            "desktop-commander.start_process",
            "--args",
            json.dumps({"command": "cd /w && rm -rf build/"}),
        ],
    )
    assert "reason: rm -rf build/ deletes files" in shell.output
    assert "actions: file_delete, file_write, shell" in shell.output
    assert "command: cd /w && rm -rf build/  <-" in shell.output
    read = runner.invoke(
        app,
        [
            "policy",
            "explain",
            "conservative",
            "--tool",
            "github.pull_request_read",
            "--args",
            json.dumps({"owner": "a", "repo": "b", "pullNumber": 1, "method": "get"}),
        ],
    )
    assert "decision: ALLOW" in read.output and "actions: - (reads only)" in read.output


def test_cli_check_names_the_catalog() -> None:
    result = runner.invoke(app, ["policy", "check", "conservative"])
    assert "catalog of real servers:" in result.output and "servers" in result.output
