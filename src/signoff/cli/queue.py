"""The approval queue on the command line: pending, approve, deny, watch, kill, resume, rules, audit.

Each command is a thin shell over the broker and audit log. Tables are for people, `--json` for
scripts. `approve`/`deny` exit 0 when recorded, 1 for an unknown id, 2 when another decision
won first and 4 when nobody waits for the call any more (its client stopped waiting: `expired`
or `withdrawn`; its proxy is gone: `abandoned`); any command exits 3 when the store cannot be used.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import typer

from signoff.cli.exits import EXIT_AUTH, EXIT_USAGE, exits, fail
from signoff.termsafe import SafeJsonLines, clean, json_text, shorten

TOKEN_HELP = "Team mode: your token (`signoff user token NAME`); or set SIGNOFF_TOKEN."


class Remember(str, Enum):
    session = "session"
    args = "args"
    tool = "tool"


def _broker() -> Any:
    from signoff.approvals.broker import Broker
    from signoff.approvals.store import open_store

    with exits():
        return Broker(open_store())


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[clean(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json_text(value, sort_keys=True)
    return shorten(clean(text), width)  # a newline shows as \n: a value never starts a line of its own


def _clock(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def pending(as_json: bool = typer.Option(False, "--json", help="One JSON array, for scripts.")) -> None:
    """List the held calls of every proxy here, oldest first."""
    from signoff.approvers.console import ago

    with exits():
        broker = _broker()
        for gone in broker.sweep():
            typer.echo(clean(f"{gone.id} ({gone.qualified}) abandoned: {gone.decision_reason}"), err=True)
        calls = broker.pending()
    from signoff.approvals.present import for_held

    if as_json:  # `presentation`: what the call does (headline, facts, preview), as the page shows it
        typer.echo(json_text([{**c.as_dict(), "presentation": for_held(c).as_dict()} for c in calls], indent=2))
        return
    if not calls:
        typer.echo("no held calls")
        return
    now = time.time()
    width = max(60, shutil.get_terminal_size((120, 24)).columns)
    for c in calls:  # each call: who and when, then what it does (headline, facts, preview), why, arguments
        typer.echo(
            f"{c.id}  {clean(c.qualified)}  held {ago(now - c.created)}, {ago(c.deadline - now)} left"
            + (f", {clean(c.who)}" if c.who else f", client {clean(c.client)}" if c.client else "")
        )
        if not c.requirements.default:
            typer.echo(f"  needs {c.requirements.describe()}")
            typer.echo(clean(f"  votes: {c.progress}"))
        typer.echo(for_held(c).as_text(width, indent="  "))


def _person(broker: Any, held_id: str, token: str | None) -> Any:
    """Team mode (someone was added with `signoff user add`): the deciding person, named by their
    token (--token or SIGNOFF_TOKEN) and allowed by their roles; otherwise None (the OS user).
    A call decided by votes (approvers / quorum / not_self) is judged by the store instead, which
    keeps a refused vote in the audit trail."""
    import os

    from signoff.team.users import People, approval_of, eligible

    people = People(broker.store)
    if not people.any():
        return None
    person = people.by_token(token or os.environ.get("SIGNOFF_TOKEN"))
    if person is None:
        fail(
            "team mode: give your token (--token or SIGNOFF_TOKEN; `signoff user token NAME` makes one)"
            if not (token or os.environ.get("SIGNOFF_TOKEN"))
            else "team mode: this token names nobody (removed, or mistyped)",
            EXIT_AUTH,
        )
    held = broker.store.get_held(held_id)
    problem = None if held is None or not held.requirements.default else eligible(person.roles, approval_of(held))
    if problem:
        fail(f"{person.name}: {problem}", EXIT_AUTH)
    return person


def _decide(
    held_id: str,
    approve: bool,
    reason: str | None,
    remember: Remember | None = None,
    arguments: str | None = None,
    token: str | None = None,
) -> None:
    edited = None
    if arguments is not None:
        try:
            edited = json.loads(arguments)
        except json.JSONDecodeError as exc:
            fail(f"--arguments must be a JSON object: {exc}", EXIT_USAGE)
        if not isinstance(edited, dict):
            fail("--arguments must be a JSON object", EXIT_USAGE)
    broker = _broker()
    with exits(unknown_hint=" (see `signoff pending`)"):
        person = _person(broker, held_id, token)
        held = broker.decide(
            held_id,
            approve,
            reason=reason,
            channel="cli",
            arguments=edited,
            by=person.by if person else None,
            remember=remember.value if remember else None,
            person=person.name if person else None,
            roles=person.roles if person else None,
        )
    extra = f" ({clean(reason)})" if reason else ""
    votes = f": {clean(held.progress)}" if held.progress else ""  # team mode: "approved by alice (1 of 2)"
    typer.echo(f"{held.status} {held.id} {clean(held.qualified)}{extra}{votes}")
    if edited is not None:
        typer.echo(f"with edited arguments: {json_text(held.edited_arguments or edited, sort_keys=True)}")
    if remember:
        typer.echo(f"remembered: {remember.value} (see `signoff rules`)")


def approve(
    held_id: str = typer.Argument(..., metavar="ID", help="The held call's id, e.g. h-7f3a9c."),
    reason: str = typer.Option(None, "--reason", "-r", metavar="TEXT", help="Why (recorded in the audit trail)."),
    remember: Remember = typer.Option(
        None,
        "--remember",
        help="Also approve later calls: this tool in this session, this tool with these arguments, or this tool always.",
    ),
    arguments: str = typer.Option(
        None, "--arguments", metavar="JSON", help="Approve with these arguments instead (JSON object)."
    ),
    token: str = typer.Option(None, "--token", metavar="TOKEN", help=TOKEN_HELP),
) -> None:
    """Approve a held call: the proxy forwards it. Exit 1 unknown id, 2 already decided, 4 nobody waits for it,
    5 team mode refused the token or role."""
    _decide(held_id, True, reason, remember, arguments, token)


def deny(
    held_id: str = typer.Argument(..., metavar="ID", help="The held call's id, e.g. h-7f3a9c."),
    reason: str = typer.Option(None, "--reason", "-r", help="Why: the model is told, so it can try another way."),
    token: str = typer.Option(None, "--token", metavar="TOKEN", help=TOKEN_HELP),
) -> None:
    """Deny a held call: the model gets your reason. Exit 1 unknown id, 2 already decided, 4 nobody waits for it,
    5 team mode refused the token or role."""
    _decide(held_id, False, reason, token=token)


def watch() -> None:
    """Decide held calls as they arrive, in an interactive console.

    Each question shows its call right above the prompt: a approve, d deny, r deny with a
    reason, s skip, q quit. The answer names the id it decided."""
    from signoff.approvers import watch as console
    from signoff.team.users import People

    with exits():
        broker = _broker()
        if People(broker.store).any():  # the console decides as the OS user: no person, no role check
            fail("team mode: decide on the page (sign in) or with `signoff approve/deny --token`", EXIT_AUTH)
        console.main(broker)


def kill(reason: str = typer.Option("", "--reason", "-r", help="Shown to the model and in the audit trail.")) -> None:
    """Stop every tool call of every proxy until `signoff resume`.

    Held calls are denied; new ones are refused."""
    with exits():
        killed = _broker().kill(reason)
    typer.echo(f"kill switch ON: every tool call is denied until `signoff resume` ({len(killed)} held calls denied)")


def resume() -> None:
    """Switch the kill switch off: tool calls follow the policy again."""
    with exits():
        _broker().resume()
    typer.echo("kill switch off: tool calls follow the policy again")


rules_app = typer.Typer(help="Remembered approvals (`approve --remember`): list, revoke.")


@rules_app.callback(invoke_without_command=True)
def rules(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="JSON, for scripts."),
    policy: bool = typer.Option(False, "--policy", help="As `hitl_policies` YAML entries."),
    revoked: bool = typer.Option(False, "--all", help="Include revoked ones."),
) -> None:
    """List remembered approvals."""
    if ctx.invoked_subcommand is not None:
        return
    broker = _broker()
    with exits():
        found = broker.remembered(include_revoked=revoked)
        policy_rules = broker.as_policy_rules() if policy else []
    if policy:
        import yaml

        # allow_unicode=False: YAML then escapes every non-ASCII character, control ones included
        typer.echo(yaml.safe_dump({"hitl_policies": policy_rules}, sort_keys=False, allow_unicode=False).rstrip())
    elif as_json:
        typer.echo(json_text([r.as_dict() for r in found], indent=2))
    elif not found:
        typer.echo("no remembered approvals")
    else:
        kinds = {"session": "this tool in session", "args": "these arguments", "tool": "this tool, always"}
        _table(
            ("id", "tool", "approves", "detail", "by", "since", "revoked"),
            [
                (
                    r.id,
                    f"{r.server}.{r.tool}",
                    kinds[r.kind],
                    r.session if r.kind == "session" else _short(dict(r.arguments or {}), 40) if r.kind == "args" else "",
                    r.created_by,
                    _clock(r.created),
                    _clock(r.revoked_at) if r.revoked_at else "",
                )
                for r in found
            ],
        )


@rules_app.command("revoke")
def revoke(rule_id: str = typer.Argument(..., metavar="ID", help="The remembered approval's id, e.g. r-1a2b3c.")) -> None:
    """Revoke a remembered approval: matching calls are held again. Exit 1 unknown, 2 already revoked."""
    with exits():
        found = _broker().revoke(rule_id)
    typer.echo(f"revoked {found.id} ({found.kind} {clean(found.server)}.{clean(found.tool)})")


audit_app = typer.Typer(help="The audit trail: list, verify the hash chain, export.")


def _audit_log() -> Any:
    from signoff.approvals.audit import AuditLog

    return AuditLog(_broker().store)


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON array, for scripts."),
    tool: str = typer.Option(None, "--tool", metavar="GLOB", help="Glob over server.tool, e.g. 'fs.write_*'."),
    decision: str = typer.Option(
        None, "--decision", metavar="DECISION", help="allowed, held, approved, denied, timeout, killed, ..."
    ),
    since: str = typer.Option(None, "--since", metavar="TIME", help="ISO time or a span back from now: 30m, 1h, 7d."),
    until: str = typer.Option(None, "--until", metavar="TIME", help="ISO time or a span back from now."),
    limit: int = typer.Option(None, "--limit", "-n", metavar="N", help="Only the last N rows."),
) -> None:
    """List audit rows, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    from signoff.approvals.audit import DECISIONS, parse_since

    if decision is not None and decision not in DECISIONS:
        fail(f"--decision must be one of {', '.join(DECISIONS)}", EXIT_USAGE)
    try:
        start = parse_since(since) if since else None
        end = parse_since(until) if until else None
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    with exits():
        rows = _audit_log().query(tool=tool, decision=decision, since=start, until=end, limit=limit)
    for row in rows:
        row["outcome"] = outcome_of_row(row)
    if as_json:
        typer.echo(json_text(rows, indent=2))
        return
    if not rows:
        typer.echo("no audit rows")
        return
    from signoff.approvals.audit import who

    _table(
        ("id", "time", "agent", "tool", "decision", "outcome", "by", "channel", "ms", "reason", "arguments"),
        [
            (
                r["id"],
                r["time"][:19].replace("T", " "),
                who(r),
                f"{r['server']}.{r['tool']}",
                r["decision"],
                r["outcome"],
                r["decided_by"],
                r["channel"],
                "-" if r["duration_ms"] is None else f"{r['duration_ms']:.0f}",
                _short(r["reason"], 40),
                _short(r["arguments"], 50),
            )
            for r in rows
        ],
    )


NEVER_RAN = ("not_run", "denied", "timeout", "killed", "withdrawn", "abandoned", "expired")


def outcome_of_row(row: dict[str, Any]) -> str:
    """Whether the call of an audit row ran: `forwarded`, `ran`, `ran: error`, `no answer`, `never ran`, or ``."""
    decision, reason = row["decision"], str(row.get("reason") or "")
    if decision == "allowed":
        return "forwarded"  # written before it is sent; a failure adds an `upstream_error` row
    if decision in ("upstream_error", "forwarded"):
        if reason.startswith("no answer"):
            return "no answer"
        return "ran: error" if decision == "upstream_error" or reason.startswith("error") else "ran"
    return "never ran" if decision in NEVER_RAN else ""


@audit_app.command("verify")
def verify() -> None:
    """Check the hash chain, the head witness and signatures; exit 1 and name the first bad row."""
    with exits():
        report = _audit_log().check()
    for warning in report.warnings or ():
        typer.echo(f"signoff: warning: {warning}", err=True)
    if report.problem is not None:
        fail(f"audit trail broken: {report.problem} ({report.summary()})", 1)
    typer.echo(f"audit trail OK: {report.checked} rows, hash chain intact; {report.summary()}")


@audit_app.command("export")
def export(
    jsonl: bool = typer.Option(False, "--jsonl", help="JSON lines, one row each (the only format so far)."),
    file: str = typer.Argument(None, metavar="[FILE]", help="Write here instead of stdout."),
) -> None:
    """Export every audit row with its hashes (verifiable elsewhere)."""
    if not jsonl:
        fail("say the format: --jsonl", EXIT_USAGE)
    log = _audit_log()
    with exits():
        if file:
            with open(file, "w", encoding="utf-8") as stream:
                count = log.export_jsonl(stream)
            typer.echo(f"exported {count} rows to {file}", err=True)
        else:
            log.export_jsonl(SafeJsonLines(sys.stdout))


def register(app: typer.Typer) -> None:
    """Add the queue commands to the root `signoff` app."""
    for command in (pending, approve, deny, watch, kill, resume):
        app.command()(command)
    app.add_typer(rules_app, name="rules")
    app.add_typer(audit_app, name="audit")
