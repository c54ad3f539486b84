"""`signoff user …` as a person types it (real subprocesses on one SIGNOFF_HOME)."""

from __future__ import annotations

import json
import subprocess
import sys

import pexpect

from signoff.approvals.store import open_store
from signoff.team.users import People
from test_team_users import PASSWORD


def signoff(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "signoff", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_add_list_token_passkey_remove() -> None:
    added = signoff("user", "add", "alice", "--role", "approver", "--role", "Finance", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "added alice (roles: approver, finance)" in added.stdout
    assert "otpauth://totp/signoff:alice?secret=" in added.stdout and "issuer=signoff" in added.stdout
    assert "█" in added.stdout or "▀" in added.stdout  # the QR code, in the terminal
    assert signoff("user", "add", "alice", "--role", "approver", "--password-stdin", stdin=PASSWORD).returncode == 1
    short = signoff("user", "add", "bob", "--role", "approver", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least" in short.stderr
    passkey_only = signoff("user", "add", "carol", "--role", "approver", "--no-totp", "--password-stdin", stdin=PASSWORD)
    assert passkey_only.returncode == 0 and "otpauth" not in passkey_only.stdout and "user passkey carol" in passkey_only.stdout

    listed = json.loads(signoff("user", "list", "--json").stdout)
    assert [(p["name"], p["roles"], p["totp"]) for p in listed] == [
        ("alice", ["approver", "finance"], True),
        ("carol", ["approver"], False),
    ]
    token = signoff("user", "token", "alice").stdout.strip()
    people = People(open_store())
    assert people.by_token(token).name == "alice"
    link = signoff("user", "passkey", "carol", "--url", "https://approvals.example.com/").stdout.strip()
    assert link.startswith("https://approvals.example.com/enrol/")
    assert people.enrolment(link.rsplit("/", 1)[1]).name == "carol"
    assert signoff("user", "token", "nobody").returncode == 1

    changed = signoff(
        "user", "set", "alice", "--role", "approver", "--new-totp", "--password-stdin", stdin="a brand new password\n"
    )
    assert changed.returncode == 0 and "roles: approver)" in changed.stdout and "otpauth://" in changed.stdout
    assert people.get("alice").roles == ("approver",)
    assert people.check_password("alice", "a brand new password") and not people.check_password("alice", PASSWORD)
    assert signoff("user", "set", "alice").returncode == 1  # nothing to change
    assert signoff("user", "remove", "alice").returncode == 0
    assert people.by_token(token) is None
    assert signoff("user", "remove", "alice").returncode == 1


def test_the_password_prompt_asks_twice_and_hides_it() -> None:
    child = pexpect.spawn(
        sys.executable, ["-m", "signoff", "user", "add", "dave", "--role", "approver"], encoding="utf-8", timeout=30
    )
    child.expect("Password: ")
    child.sendline(PASSWORD)
    child.expect("Repeat for confirmation: ")
    child.sendline(PASSWORD)
    child.expect("added dave")
    child.expect(pexpect.EOF)
    assert PASSWORD not in child.before
    assert People(open_store()).check_password("dave", PASSWORD) is not None


def test_a_bad_trusted_proxy_is_named_not_a_traceback() -> None:
    refused = signoff("ui", "--port", "1", "--trusted-proxy", "not-an-ip")
    assert refused.returncode == 2 and "--trusted-proxy" in refused.stderr and "Traceback" not in refused.stderr
