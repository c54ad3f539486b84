"""`signoff policy check|explain`: validate a policy and see why a call gets its decision."""

from __future__ import annotations

import json

import typer

from signoff.cli.exits import exits, fail
from signoff.termsafe import clean

policy_app = typer.Typer(help="Check a policy file, and explain its decision for a call.", no_args_is_help=True)


@policy_app.command()
def check(file: str = typer.Argument(..., help="Policy file, or a preset: conservative, balanced, permissive.")) -> None:
    """Validate FILE and print a summary; exit 2 with file:line: field: problem if it is invalid."""
    from signoff.policy.engine import load_policy

    with exits():
        policy = load_policy(file)
    info = policy.summary()
    by = info["by_decision"]
    typer.echo(f"{info['source']}: OK ({info['rules']} rules: {by['ask']} ask, {by['deny']} deny, {by['allow']} allow)")
    typer.echo(f"  actions: {', '.join(info['actions']) or '-'}")
    d = info["defaults"]
    typer.echo(f"  defaults: decision {d['decision']}, timeout {d['timeout']:g}s, on_timeout {d['on_timeout']}")
    typer.echo(f"  internal domains: {', '.join(info['internal_domains']) or '- (every address counts as external)'}")
    typer.echo(f"  catalog of real servers: {info['catalog']}")
    team = info["approvals"]
    if team["rules"]:
        typer.echo(
            f"  approvals: {team['rules']} rules say who approves (roles {', '.join(team['roles']) or '-'}; "
            f"highest quorum {team['max_quorum']}; not_self on {team['not_self']})"
        )
    typer.echo(f"  hash: {info['hash']}")


@policy_app.command()
def explain(
    file: str = typer.Argument(..., help="Policy file or preset."),
    tool: str = typer.Option(..., "--tool", help="The call's tool as server.tool, e.g. filesystem.write_file."),
    args: str = typer.Option("{}", "--args", help="The call's arguments as a JSON object."),
    annotations: str = typer.Option(
        None, "--annotations", help='Tool annotations as JSON, e.g. {"destructiveHint": true} (default: the catalog\'s).'
    ),
    agent: str = typer.Option("", "--agent", help="The agent making the call (for conditions on `agent`)."),
    machine: str = typer.Option("", "--machine", help="The machine it runs on (for conditions on `machine`)."),
    owner: str = typer.Option("", "--owner", help="The agent's owner (for conditions on `owner`)."),
) -> None:
    """Print the decision for one call, the actions and facts read from it, the rule that made it,
    who may approve it, and why every other rule did not match."""
    from signoff.model import Identity, ToolCall
    from signoff.policy.engine import PolicyContext, load_policy

    server, dot, name = tool.partition(".")
    if not dot or not server or not name:
        fail(f"--tool must be server.tool (e.g. filesystem.write_file), got {tool!r}")
    try:
        arguments = json.loads(args)
        hints = json.loads(annotations) if annotations is not None else {}
    except json.JSONDecodeError as exc:
        fail(f"--args/--annotations must be JSON: {exc}")
    if not isinstance(arguments, dict) or not isinstance(hints, dict):
        fail("--args and --annotations must be JSON objects")
    with exits():
        policy = load_policy(file, context=PolicyContext(counter=_counter()))
    who = Identity(machine, agent, owner)
    probe = ToolCall(server, name, arguments, hints, identity=who)
    profile = policy.profile(probe)
    if annotations is None and profile.annotations:  # what the real server declares, from the catalog
        hints = dict(profile.annotations)
        probe = ToolCall(server, name, arguments, hints, identity=who)
        profile = policy.profile(probe)
    decision, results = policy.explain(probe)
    typer.echo(f"decision: {decision.verdict.value.upper()}")
    typer.echo(f"  rule: {decision.rule or 'none (defaults.decision)'}")
    typer.echo(f"  reason: {decision.reason}")
    typer.echo(f"  tool: {profile.why or profile.source}" + (f"; annotations {json.dumps(hints)}" if hints else ""))
    typer.echo(f"  actions: {', '.join(decision.actions) or '- (reads only)'}")
    for fact in policy.understand(probe).facts():
        typer.echo(f"  {fact.label}: {fact.text}" + ("  <-" if fact.risky else ""))
    if decision.verdict.value == "ask":
        typer.echo(f"  timeout: {decision.timeout:g}s, then {decision.on_timeout}; hold: {decision.hold}")
        typer.echo(f"  approval: {decision.approval.describe()}")
    if agent or machine or owner:
        typer.echo(f"  who: agent {agent or '-'} on machine {machine or '-'}, owner {owner or '-'}")
    typer.echo("rules:")
    for result in results:
        mark = f"MATCH ({result.verdict.value})" if result.matched and result.verdict else "no"
        rule = policy.rules[result.index].spec
        if result.matched and rule.decision == "ask" and not rule.requirements().default:
            mark += f" [{rule.requirements().describe()}]"
        typer.echo(f"  {result.label}: {mark} - {result.why}")


@policy_app.command()
def replay(
    file: str = typer.Argument(..., help="The policy to try (file or preset)."),
    tool: str = typer.Option(None, "--tool", help="Only calls of tools matching this glob (server.tool)."),
    since: str = typer.Option(None, "--since", help="Only calls since this time (ISO date/time, or 1h, 2d…)."),
    as_json: bool = typer.Option(False, "--json", help="Print the changes as JSON."),
) -> None:
    """Run a policy over the calls recorded in the audit trail and show what it would change."""
    from signoff.approvals.audit import AuditLog, parse_since
    from signoff.approvals.store import open_store
    from signoff.policy.engine import load_policy
    from signoff.policy.replay import replay as run_replay

    with exits():
        policy = load_policy(file)
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        fail(f"--since: {exc}")
    rows = AuditLog(open_store()).query(tool=tool, since=start)
    changes, counts = run_replay(policy, rows)
    if as_json:
        typer.echo(json.dumps({"changes": [c.__dict__ for c in changes], "counts": dict(counts)}, indent=2, default=str))
        return
    total = sum(counts.values())
    for c in changes:
        args = json.dumps(c.arguments, ensure_ascii=False)
        typer.echo(
            clean(f"#{c.row_id} {c.time} {c.tool}: {c.was} -> {c.now.upper()}  ({c.rule or 'default'}: {c.reason})  {args[:120]}")
        )  # recorded calls carry the model's text: escaped
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if k.split("→")[0] != k.split("→")[1])
    typer.echo(f"{total} recorded calls replayed; {len(changes)} would change" + (f" ({summary})" if summary else "") + ".")
    typer.echo("(tool annotations are not recorded: rules on annotations see the MCP defaults)")


def _counter():
    """Recent calls from the audit trail, for `rate:` rules (None when there is no store yet)."""
    from signoff.approvals.audit import AuditCounter
    from signoff.approvals.store import open_store
    from signoff.errors import StoreError
    from signoff.paths import db_path

    try:
        if not db_path().exists():
            return None
        return AuditCounter(open_store())
    except (StoreError, OSError):
        return None
