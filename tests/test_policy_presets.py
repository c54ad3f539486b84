"""The shipped presets (three oversight levels) and the per-server examples decide as their comments say."""

from __future__ import annotations

import pytest

from policy_helpers import ROOT, call, verdict
from signoff.policy.engine import PRESETS, load_policy


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_ship_in_configs_and_package_identically(preset: str) -> None:
    shipped = (ROOT / "configs" / f"{preset}.yaml").read_text()
    packaged = (ROOT / "src" / "signoff" / "policy" / "presets" / f"{preset}.yaml").read_text()
    assert shipped == packaged
    assert load_policy(preset).hash == load_policy(str(ROOT / "configs" / f"{preset}.yaml")).hash


READ_ONLY = {"readOnlyHint": True, "openWorldHint": False}
WRITES = {"readOnlyHint": False, "destructiveHint": False, "openWorldHint": False}
DESTROYS = {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": False}
PRESET_CASES = [
    # tool, args, annotations, conservative, balanced, permissive
    ("git.git_status", {}, READ_ONLY, "allow", "allow", "allow"),
    ("git.git_commit", {"message": "m"}, WRITES, "ask", "allow", "allow"),
    ("filesystem.write_file", {"path": "/a"}, DESTROYS, "ask", "ask", "ask"),
    ("filesystem.delete_file", {"path": "/a"}, {}, "ask", "ask", "ask"),
    ("fetch.fetch", {"url": "https://example.org"}, {"readOnlyHint": True}, "allow", "allow", "allow"),  # a GET is a read (#11)
    ("fetch.fetch", {"url": "https://production.api.x.com"}, {"readOnlyHint": True}, "ask", "ask", "allow"),
    ("gmail.send_email", {"to": "a@b.com"}, {}, "ask", "ask", "allow"),
    ("shop.checkout", {"amount": 20}, {"readOnlyHint": False, "destructiveHint": False}, "ask", "allow", "allow"),
    ("db.query", {"sql": "SELECT 1 FROM users"}, READ_ONLY, "allow", "allow", "allow"),
    ("db.query", {"sql": "DELETE FROM users"}, READ_ONLY, "ask", "ask", "ask"),
    # issue #11: shell commands are read with a parser; known read-only programs are reads
    ("shell.run_command", {"cmd": "ls -la | grep x"}, {}, "allow", "allow", "allow"),
    ("shell.run_command", {"cmd": "make build"}, {}, "ask", "ask", "allow"),
    ("shell.run_command", {"cmd": "cd /w && rm -rf build/"}, {}, "ask", "ask", "ask"),
    ("shell.run_command", {"cmd": "curl -X POST https://production.api.x.com/v1 -d a=1"}, {}, "ask", "ask", "allow"),
    ("shell.run_command", {"cmd": "psql -c 'DELETE FROM users'"}, {}, "ask", "ask", "ask"),
    ("shell.run_command", {"cmd": "if then fi ((("}, {}, "ask", "ask", "ask"),  # unparseable: every action
    ("github.list_issues", {"repo": "a/b"}, {}, "allow", "allow", "allow"),  # reads are not held, even without hints
    ("gmail.create_draft", {"to": "eve@evil.example"}, {}, "allow", "allow", "allow"),
    ("stripe.create_refund", {"amount": 500}, {}, "ask", "ask", "ask"),
    ("stripe.create_payment_intent", {"amount": "$2,500.00"}, {}, "ask", "ask", "ask"),
    ("stripe.create_payment_intent", {"amount": "$50"}, {}, "ask", "ask", "ask"),  # every payment: money leaving
    ("vault.get_secret", {"name": "db"}, {}, "ask", "ask", "allow"),
    ("github.add_collaborator", {"user": "eve"}, {}, "ask", "ask", "allow"),
    ("mongo.delete-many", {"collection": "logs", "filter": {}}, {}, "ask", "ask", "ask"),
    ("x.do_thing", {}, {}, "ask", "allow", "allow"),  # nothing recognises it: conservative holds it
]


@pytest.mark.parametrize(("tool", "args", "hints", "conservative", "balanced", "permissive"), PRESET_CASES)
def test_presets_oversight_levels(tool, args, hints, conservative, balanced, permissive) -> None:
    c = call(tool, args, **hints)
    assert verdict(load_policy("conservative"), c) == conservative
    assert verdict(load_policy("balanced"), c) == balanced
    assert verdict(load_policy("permissive"), c) == permissive


@pytest.mark.parametrize("name", ["filesystem", "git", "fetch"])
def test_per_server_examples(name: str) -> None:
    policy = load_policy(str(ROOT / "configs" / f"{name}.yaml"))
    cases = {
        "filesystem": [
            ("filesystem.read_text_file", {"path": "/w/a"}, "allow"),
            ("filesystem.write_file", {"path": "/w/a"}, "ask"),
            ("filesystem.write_file", {"path": "/home/u/.ssh/id_rsa"}, "deny"),
            ("filesystem.move_file", {"source": "a"}, "ask"),
            ("filesystem.edit_file", {"path": "/w/.env"}, "ask"),
            ("filesystem.read_text_file", {"path": "/home/u/.ssh/id_rsa"}, "allow"),
            ("filesystem.create_directory", {"path": "/w/new"}, "ask"),
        ],
        "git": [
            ("git.git_status", {}, "allow"),
            ("git.git_commit", {}, "ask"),
            ("git.git_add", {"files": ["src/a.py"]}, "allow"),
            ("git.git_add", {"files": ["."]}, "ask"),
        ],
        "fetch": [
            ("fetch.fetch", {"url": "http://169.254.169.254/latest"}, "deny"),
            ("fetch.fetch", {"url": "https://wiki.company.com"}, "allow"),
            ("fetch.fetch", {"url": "https://example.org"}, "ask"),
        ],
    }[name]
    for tool, args, expected in cases:
        assert verdict(policy, call(tool, args)) == expected, (tool, args)
