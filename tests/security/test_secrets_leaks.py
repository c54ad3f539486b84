"""Attacks on secrets: read the approval page's token (or a TOTP secret) from a log; read the store
or log because they are 0644 in an existing home; read passwords, tokens and keys a model put in
tool arguments from the audit trail, a notification or the page. Secrets stay out of all of these,
while the upstream still gets the raw value and the policy still decides on it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
from pathlib import Path

import anyio
import pytest

from conftest import connect, fake_server, through_signoff
from signoff.approvals.audit import AuditLog
from signoff.approvals.broker import Broker
from signoff.approvals.notify import message_for
from signoff.approvals.store import open_store
from signoff.model import Decision, ToolCall, Verdict
from signoff.redact import MARK, redact

SECRETS = {
    "password": "hunter2-hunter2",
    "headers": {"Authorization": "Bearer abcdefghijklmnop123", "X-Api-Key": "k-123456"},
    "note": "use ghp_abcdefghijklmnopqrstuvwxyz0123456789 for it",
    "url": "https://deploy:s3cr3t-pw@example.com/hook?token=t0k3n&page=2",
    "config": {
        "nested": [{"client_secret": "cs-value"}],
        "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    },
}
RAW_VALUES = (
    "hunter2-hunter2",
    "abcdefghijklmnop123",
    "k-123456",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "s3cr3t-pw",
    "t0k3n",
    "cs-value",
    "BEGIN PRIVATE KEY",
)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def audit_text(home: Path) -> str:
    store = open_store(home / "signoff.db")
    try:
        return json.dumps(AuditLog(store).query())
    finally:
        store.close()


def test_secret_looking_arguments_are_redacted_wherever_they_are_shown() -> None:
    shown = json.dumps(redact({"text": "hello", "max_tokens": 5, **SECRETS}))
    assert not [value for value in RAW_VALUES if value in shown]
    assert '"text": "hello"' in shown and '"max_tokens": 5' in shown and "page=2" in shown
    title, body = message_for(ToolCall("api", "post", {"path": "/x", **SECRETS}), "h-1", "why", None)
    assert not [value for value in RAW_VALUES if value in title + body] and MARK in body


def test_page_data_is_redacted_and_an_edit_keeps_the_hidden_secret(signoff_home: Path) -> None:
    from signoff.web.app import UI
    from signoff.web.security import Guard

    broker = Broker()
    call = ToolCall("api", "post", {"path": "/x", "password": "hunter2-hunter2"})
    held_id = broker.issue_retry(call, Decision(Verdict.ASK, reason="check it"))
    view = UI(broker, Guard("t", "127.0.0.1", 1)).held_view(broker.get(held_id), brief=True)
    assert "hunter2" not in json.dumps(view) and view["arguments"]["password"] == MARK
    # the person edits the path on the redacted view; the password they could not see is kept
    held = broker.decide(held_id, True, arguments={"path": "/y", "password": MARK})
    assert held.edited_arguments == {"path": "/y", "password": "hunter2-hunter2"}
    assert "hunter2" not in audit_text(signoff_home)


POLICY = """\
hitl_policies:
  - tool: '*.echo'
    condition: 'args.password == "open-sesame"'
    decision: deny
    reason: not that password
"""


@pytest.mark.anyio
@pytest.mark.e2e
async def test_secrets_in_arguments_reach_the_tool_and_policy_but_not_the_audit_trail(signoff_home: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    target = tmp_path / "written"
    async with connect(through_signoff(fake_server(), "--policy", str(policy))) as client:
        with anyio.fail_after(60):
            wrote = await client.call_tool("write_file", {"path": str(target), "content": SECRETS["headers"]["Authorization"]})
            assert not wrote.is_error and target.read_text() == "Bearer abcdefghijklmnop123"  # raw upstream
            denied = await client.call_tool("echo", {"text": "x", "password": "open-sesame"})
            assert denied.is_error and "not that password" in denied.content[0].text  # the policy saw it raw
    text = audit_text(signoff_home)
    assert "abcdefghijklmnop123" not in text and "open-sesame" not in text and MARK in text
    log = (signoff_home / "signoff.log").read_text()
    assert "abcdefghijklmnop123" not in log and "open-sesame" not in log


@pytest.mark.anyio
@pytest.mark.e2e
async def test_no_redact_keeps_raw_values_in_the_audit_trail(signoff_home: Path, tmp_path: Path) -> None:
    async with connect(through_signoff(fake_server(), "--no-redact")) as client:
        with anyio.fail_after(60):
            assert not (await client.call_tool("echo", {"text": "x", "password": "plain-value"})).is_error
    assert "plain-value" in audit_text(signoff_home)


@pytest.mark.anyio
@pytest.mark.e2e
async def test_store_and_log_are_owner_only_in_an_existing_loose_home_whatever_the_umask(signoff_home: Path) -> None:
    signoff_home.mkdir(mode=0o755)
    os.chmod(signoff_home, 0o755)
    db = signoff_home / "signoff.db"
    sqlite3.connect(db).close()
    os.chmod(db, 0o644)
    (signoff_home / "signoff.log").write_text("")
    os.chmod(signoff_home / "signoff.log", 0o644)
    command = ["sh", "-c", 'umask 000; exec "$@"', "sh", *through_signoff(fake_server())]
    async with connect(command) as client:
        with anyio.fail_after(60):
            assert not (await client.call_tool("echo", {"text": "x"})).is_error
            files = ["signoff.db", "signoff.db-wal", "signoff.db-shm", "signoff.log", "signoff.audit-head"]
            assert {name: oct(mode(signoff_home / name)) for name in files} == {name: "0o600" for name in files}
            assert oct(mode(signoff_home)) == "0o700"


@pytest.mark.anyio
@pytest.mark.e2e
async def test_ui_token_never_reaches_a_log(signoff_home: Path) -> None:
    stderr_file = signoff_home.parent / "run-stderr.txt"
    try:
        with open(stderr_file, "w") as errlog:
            from mcp import ClientSession, StdioServerParameters
            from mcp.client.stdio import stdio_client

            command = through_signoff(fake_server(), "--ui")
            params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as client:
                    with anyio.fail_after(60):
                        await client.initialize()
                        assert not (await client.call_tool("echo", {"text": "x"})).is_error
        token = (signoff_home / "ui-token").read_text().strip()
        if (signoff_home / "ui.pid").exists():  # we started the page: wait for its first log line
            with anyio.fail_after(30):
                while "approval page" not in (signoff_home / "ui.log").read_text():
                    await anyio.sleep(0.05)
        assert oct(mode(signoff_home / "ui-token")) == "0o600"
        for name in ("signoff.log", "ui.log"):
            path = signoff_home / name
            if path.exists():
                assert token not in path.read_text(), name
                assert oct(mode(path)) == "0o600", name
        assert "approval page: http://127.0.0.1:" in (signoff_home / "signoff.log").read_text()
        assert token not in stderr_file.read_text()
    finally:
        pid_file = signoff_home / "ui.pid"
        if pid_file.exists():  # the page this test started in the background (its own pid only)
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass
