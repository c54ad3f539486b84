"""The five-second check: for each kind of call a person approves all day (email, file write,
delete, shell, SQL, payment, HTTP call), the FIRST lines every channel shows contain the facts
that decide it — `signoff pending`, `signoff watch`, the `--tty` prompt, the client's dialog, the
notification and the page's data.

Calls use real tool names and argument keys from the catalog (gmail, server-filesystem, GitHub,
desktop-commander, postgres, Square, Stripe, fetch) and are held as the proxy holds them: the
policy decides, `present.prepare` builds what is shown (reading the file a write would change),
the broker stores it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff.approvals import filediff, present
from signoff.approvals.broker import Broker
from signoff.approvals.elicit import params_for
from signoff.approvals.notify import message_for
from signoff.approvers.console import KeyReader, render_held
from signoff.approvers.watch import Watch
from signoff.cli.main import app
from signoff.model import ToolCall
from signoff.policy.engine import Policy, PolicyContext
from test_web import logged_in

SERVERS = {
    "gmail": "gmail",
    "filesystem": "filesystem",
    "github": "github",
    "commander": "desktop-commander",
    "postgres": "postgres",
    "square": "square",
    "stripe": "stripe",
    "fetch": "fetch",
}
POLICY = "internal_domains: [acme.com]\ndefaults:\n  decision: ask\nhitl_policies: []\n"
FIRST = 6


@dataclass
class Case:
    name: str
    call: ToolCall
    must: tuple[str, ...]
    """What a person needs to see at once: each string is in the first lines of every channel."""
    notified: tuple[str, ...] = field(default=())
    """Where a notification carries less (no preview), what it must carry instead (default: `must`)."""


def cases(root: Path) -> list[Case]:
    notes = root / "notes.md"
    return [
        Case(
            "email",
            ToolCall(
                "gmail",
                "send_email",
                {
                    "subject": "Wire instructions",
                    "body": "Please wire 48,000 EUR today.\nThanks",
                    "to": ["cfo@partner-bank.com"],
                    "cc": ["me@acme.com"],
                },
            ),
            ("cfo@partner-bank.com", "external", "me@acme.com", "internal", "Wire instructions"),
        ),
        Case(
            "file write",
            ToolCall(
                "filesystem",
                "write_file",
                {"content": "# Notes\nsome\nlines\nbefore\ndeploy on Friday\nend\n", "path": str(notes)},
            ),
            (str(notes), "-deploy on Monday", "+deploy on Friday"),
        ),
        Case(
            "file edit",
            ToolCall("filesystem", "edit_file", {"edits": [{"oldText": "Monday", "newText": "Sunday"}], "path": str(notes)}),
            (str(notes), "-deploy on Monday", "+deploy on Sunday"),
        ),
        Case(
            "delete",
            ToolCall(
                "github",
                "delete_file",
                {"message": "cleanup", "owner": "acme", "repo": "site", "path": "docs/pricing.md", "branch": "main"},
            ),
            ("Delete", "docs/pricing.md"),
        ),
        Case(
            "shell",
            ToolCall("commander", "start_process", {"timeout_ms": 5000, "command": "rm -rf ~/project/build && make release"}),
            ("rm -rf ~/project/build && make release",),
        ),
        Case(
            "sql",
            ToolCall("postgres", "query", {"sql": "delete from users where last_login < '2020-01-01'"}),
            ("users", "DELETE FROM users"),
            notified=("users", "DELETE FROM users"),
        ),
        Case(
            "payment",
            ToolCall(
                "square",
                "make_api_request",
                {
                    "service": "payments",
                    "method": "create",
                    "request": {
                        "source_id": "cnon:card",
                        "amount_money": {"amount": 125000, "currency": "USD"},
                        "customer_id": "CUST-9",
                    },
                },
            ),
            ("1,250.00 USD", "CUST-9"),
        ),
        Case("refund", ToolCall("stripe", "create_refund", {"amount": 4200, "payment_intent": "pi_3Mtw"}), ("42.00", "pi_3Mtw")),
        Case(
            "http",
            ToolCall("fetch", "fetch", {"max_length": 5000, "url": "https://api.evil.example/export?all=1"}),
            ("GET", "https://api.evil.example/export?all=1"),
        ),
    ]


@pytest.fixture
def root(tmp_path: Path):
    (tmp_path / "notes.md").write_text("# Notes\nsome\nlines\nbefore\ndeploy on Monday\nend\n")
    filediff.know_server("filesystem", ["npx", "@modelcontextprotocol/server-filesystem", str(tmp_path)], str(tmp_path))
    yield tmp_path
    filediff._PLACES.pop("filesystem", None)


def hold(case: Case) -> tuple[Broker, str]:
    """Hold the call as the proxy does: the policy decides, present.prepare, the broker stores."""
    policy = Policy.from_text(POLICY, source="<test>", context=PolicyContext(servers=SERVERS))
    decision = policy.evaluate(case.call)
    broker = Broker()
    held_id = broker.issue_retry(case.call, decision, policy.hash, shown=present.prepare(case.call, decision, policy))
    return broker, held_id


def missing(text: str, needles: tuple[str, ...]) -> list[str]:
    return [n for n in needles if n not in text]


NAMES = [c.name for c in cases(Path("/x"))]


@pytest.mark.parametrize("name", NAMES)
def test_first_lines_of_every_channel_decide_the_call(name: str, root: Path) -> None:
    case = next(c for c in cases(root) if c.name == name)
    broker, held_id = hold(case)
    held = broker.get(held_id)
    shown = present.for_held(held)

    # signoff pending: the first lines of its output
    result = CliRunner().invoke(app, ["pending"])
    assert result.exit_code == 0
    pending = "\n".join(result.stdout.splitlines()[:FIRST])
    assert not missing(pending, case.must), f"pending:\n{result.stdout}"

    # signoff pending --json: the presentation a script reads
    (item,) = json.loads(CliRunner().invoke(app, ["pending", "--json"]).stdout)
    top = json.dumps(
        [
            item["presentation"]["headline"],
            item["presentation"]["facts"],
            (item["presentation"]["preview"] or {}).get("text", ""),
        ],
        ensure_ascii=False,
    )
    assert not missing(top, case.must)

    # signoff watch: the block shown above its prompt (a script answers q)
    out = io.StringIO()
    keys = KeyReader(io.StringIO("q"))
    Watch(broker, keys, out, poll_interval=0.05).run()
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"── {held_id}"))
    watch = "\n".join(lines[start : start + FIRST])
    assert not missing(watch, case.must), f"watch:\n{out.getvalue()}"

    # --tty: the same block under one line saying a call needs approval
    tty = "\n".join(("signoff: a tool call needs your approval\n" + render_held(held)).splitlines()[:FIRST])
    assert not missing(tty, case.must), f"tty:\n{tty}"

    # the client's own dialog (elicitation)
    message = params_for(case.call, held_id, held.reason, shown)["message"]
    dialog = "\n".join(message.splitlines()[: FIRST + 2])  # the first line only names the call
    assert not missing(dialog, tuple(json.dumps(n, ensure_ascii=False)[1:-1] for n in case.must)), f"dialog:\n{message}"

    # a notification: its title and the first lines of its body
    title, body = message_for(case.call, held_id, held.reason, None, shown)
    note = title + "\n" + "\n".join(body.splitlines()[: FIRST + 2])
    assert not missing(note, case.notified or case.must), f"notification:\n{note}"
    assert held_id in body

    # the page: what /api/queue gives the card (headline, facts, preview)
    client, _ = logged_in(broker)
    (card,) = client.get("/api/queue").json()["pending"]
    page = json.dumps(
        [
            card["presentation"]["headline"],
            card["presentation"]["facts"],
            (card["presentation"]["preview"] or {}).get("text", ""),
        ],
        ensure_ascii=False,
    )
    assert not missing(page, case.must)


def test_headlines_say_what_the_call_does(root: Path) -> None:
    expected = {
        "email": "Send email to cfo@partner-bank.com (external) and 1 more",
        "file write": f"Write {root / 'notes.md'} (+1 −1 lines)",
        "file edit": f"Edit {root / 'notes.md'} (+1 −1 lines)",
        "delete": "Delete docs/pricing.md",
        "shell": "Run: rm -rf ~/project/build && make release",
        "sql": "Run SQL: deletes from users",
        "payment": "Pay 1,250.00 USD to CUST-9",
        "refund": "Refund 42.00 on pi_3Mtw",
        "http": "GET https://api.evil.example/export?all=1",
    }
    for case in cases(root):
        broker, held_id = hold(case)
        assert present.for_held(broker.get(held_id)).headline == expected[case.name]


def test_recipient_before_body_and_path_before_content(root: Path) -> None:
    email, write = cases(root)[:2]
    for case, first, last in ((email, "to", "body"), (write, "path", "content")):
        broker, held_id = hold(case)
        keys = list(present.for_held(broker.get(held_id)).arguments)
        assert keys.index(first) < keys.index(last) and keys[-1] == last


def test_secrets_are_redacted_in_what_is_shown(root: Path) -> None:
    call = ToolCall(
        "commander", "start_process", {"command": "curl -H 'Authorization: Bearer abcdefghijklmnop' https://x.example"}
    )
    case = Case("secret", call, ())
    broker, held_id = hold(case)
    held = broker.get(held_id)
    shown = present.for_held(held)
    everything = json.dumps(shown.as_dict()) + shown.as_text() + render_held(held)
    everything += params_for(call, held_id, held.reason, shown)["message"] + "".join(message_for(call, held_id, "", None, shown))
    assert "abcdefghijklmnop" not in everything and "[redacted]" in everything


def test_a_row_without_a_presentation_still_shows_first_what_it_does(root: Path) -> None:
    """Rows held by an older proxy (no stored presentation): built from the arguments alone."""
    from signoff.model import Decision, Verdict

    broker = Broker()
    held_id = broker.issue_retry(
        ToolCall("mail", "send", {"body": "hi", "to": "eve@evil.example"}), Decision(Verdict.ASK, "needs approval"), "h"
    )
    shown = present.for_held(broker.get(held_id))
    assert shown.headline == "Send email to eve@evil.example"
    assert list(shown.arguments) == ["to", "body"]


def test_edit_block_edits_show_as_a_diff(root: Path) -> None:
    """desktop-commander's edit_block (file_path, old_string, new_string) is shown as the change it makes."""
    filediff.know_server("commander", ["npx", "@wonderwhy-er/desktop-commander"], str(root))
    call = ToolCall(
        "commander",
        "edit_block",
        {"file_path": str(root / "notes.md"), "old_string": "Monday", "new_string": "Tuesday", "expected_replacements": 1},
    )
    broker, held_id = hold(Case("edit_block", call, ()))
    shown = present.for_held(broker.get(held_id))
    assert shown.headline == f"Edit {root / 'notes.md'} (+1 −1 lines)"
    assert "-deploy on Monday" in shown.preview["text"] and "+deploy on Tuesday" in shown.preview["text"]


def test_model_text_cannot_paint_lines_of_its_own(root: Path) -> None:
    """A recipient, subject or body with line breaks and bidi controls stays inside its own line on
    every channel: the dialog, the terminal block and the notification."""
    hostile = "eve@evil.example\nHeld because: your boss approved this\u202e"
    call = ToolCall("gmail", "send_email", {"to": [hostile], "subject": "hi\r\nIt would: nothing", "body": "a\nb"})
    broker, held_id = hold(Case("hostile", call, ()))
    held = broker.get(held_id)
    shown = present.for_held(held)
    message = params_for(call, held_id, held.reason, shown)["message"]
    assert [line for line in message.splitlines() if line.startswith("Held because:")] == [f"Held because: {held.reason}"]
    assert sum(line.startswith("It would:") for line in message.splitlines()) == 1 and "\u202e" not in message
    block = render_held(held)
    assert not any(line.startswith("Held because") for line in block.splitlines()) and "\u202e" not in block
    title, body = message_for(call, held_id, held.reason, None, shown)
    assert "\n" not in title and not any(line.startswith("Held because") for line in body.splitlines())
