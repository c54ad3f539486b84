"""`signoff run`'s command line (cli/run.py): what is an option, what is the wrapped command, and
one-line usage errors. The wrapped command must arrive exactly as typed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from signoff.cli import run as run_cli
from signoff.cli.main import app
from signoff.cli.run import parse


@pytest.mark.parametrize(
    ("argv", "command", "policy"),
    [
        (["--", "npx", "-y", "pkg"], ["npx", "-y", "pkg"], None),
        (["npx", "-y", "pkg"], ["npx", "-y", "pkg"], None),  # the command starts at the first word
        (["-p", "balanced", "npx", "--policy", "x"], ["npx", "--policy", "x"], "balanced"),  # its options are its own
        (["-p", "none", "--", "srv", "--", "a"], ["srv", "--", "a"], "none"),  # a later -- belongs to the command
        (["srv", "--", "a"], ["srv", "--", "a"], None),
        (["--", "srv", "--help"], ["srv", "--help"], None),
        (["srv", "--help"], ["srv", "--help"], None),
        (["--", "--odd-name"], ["--odd-name"], None),
        (["--policy=none", "--", "srv"], ["srv"], "none"),
        (["-pnone", "--", "srv"], ["srv"], "none"),
        ([], [], None),
    ],
)
def test_the_wrapped_command_arrives_whole(argv: list[str], command: list[str], policy: str | None) -> None:
    found = parse(argv)
    assert found.command == command and found.policy == policy


def test_every_option_reaches_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}
    monkeypatch.setattr("signoff.runner.main", lambda **kw: seen.update(kw))
    monkeypatch.delenv("SIGNOFF_REDACT", raising=False)
    run_cli.run_command(
        "-c f.yaml -n fs -p balanced --http 127.0.0.1:0 --timeout 5m --log-level debug --observe --tty "
        "--notify a:// --notify b:// --desktop --ui --share session --allow-host h1 --allow-host h2 "
        "--auth-token-file t --http-idle-timeout 1m --http-max-sessions 3 --http-max-body 1024 --no-redact "
        "--public-url https://x --agent bot --machine m1 --owner ann -- srv a".split()
    )
    assert seen == {
        "command": ["srv", "a"],
        "config_path": "f.yaml",
        "name": "fs",
        "policy": "balanced",
        "http": "127.0.0.1:0",
        "timeout": "5m",
        "log_level": "debug",
        "observe": True,
        "tty": True,
        "notify": ["a://", "b://"],
        "desktop": True,
        "ui": True,
        "public_url": "https://x",
        "identity": {"agent": "bot", "machine": "m1", "owner": "ann"},
        "http_options": {
            "share": "session",
            "allow_hosts": ["h1", "h2"],
            "token_file": "t",
            "idle_timeout": "1m",
            "max_sessions": 3,
            "max_body": 1024,
        },
    }
    import os

    assert os.environ["SIGNOFF_REDACT"] == "off"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--bogus", "--", "srv"], "unrecognized arguments: --bogus"),  # not quietly part of the command
        (["--pol", "x", "--", "srv"], "unrecognized arguments: --pol"),  # no abbreviations
        (["--policy"], "expected one argument"),
        (["--http-max-sessions", "many", "--", "srv"], "invalid int value: 'many'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], said: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "signoff", "run", *argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and said in done.stderr and "signoff run --help" in done.stderr


def test_typer_lists_run_and_hands_it_the_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(run_cli, "run_command", seen.append)
    assert "run" in CliRunner().invoke(app, ["--help"]).output
    assert CliRunner().invoke(app, ["run", "-p", "none", "--", "srv", "-x"]).exit_code == 0
    assert seen == [["-p", "none", "srv", "-x"]]  # click drops the `--`; parse() gives the same result
    assert parse(seen[0]).command == ["srv", "-x"]
