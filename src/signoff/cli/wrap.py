"""`signoff wrap` / `signoff unwrap`: route an AI client's MCP servers through signoff, and back."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import typer

from signoff.cli.exits import exits
from signoff.errors import ConfigError
from signoff.termsafe import clean
from signoff.wrap.clients import CLIENTS

_TARGET = f"A client ({', '.join(CLIENTS)}) or a config file PATH; none lists what would change."


def signoff_command(explicit: str | None, absolute: bool) -> list[str]:
    """How the client should start signoff. GUI clients often lack the shell's PATH, hence --absolute."""
    if explicit:
        return shlex.split(explicit)
    if not absolute:
        return ["signoff"]
    found = shutil.which("signoff")
    return [os.path.abspath(found)] if found else [sys.executable, "-m", "signoff"]


def holds(policy: str | None) -> str:
    """What the servers wrapped with this --policy will hold, in a few words."""
    if not policy:
        return "nothing will be held (no --policy: every call is allowed and audited; try --policy balanced)"
    from signoff.policy.engine import PRESETS, resolve_policy_source

    if policy in PRESETS and not os.path.exists(policy):
        text, _ = resolve_policy_source(policy)
        summary = text.splitlines()[0].partition(":")[2].strip().rstrip(".")
        return f"holds what the {policy} preset holds ({summary})"
    return f"holds what {policy} holds"


def register(app: typer.Typer) -> None:
    @app.command()
    def wrap(
        target: str = typer.Argument(None, help=_TARGET),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff; write nothing."),
        policy: str = typer.Option(
            None,
            "--policy",
            metavar="FILE|PRESET",
            help="Add --policy POLICY to every wrapped server (without it, signoff run uses balanced; none holds nothing).",
        ),
        ui: bool = typer.Option(False, "--ui", help="Add --ui (start the approval page) to every wrapped server."),
        absolute: bool = typer.Option(False, "--absolute", help="Write signoff's full path (GUI clients often lack your PATH)."),
        command: str = typer.Option(
            None, "--signoff-command", metavar="COMMAND", help="The command that starts signoff, e.g. /opt/bin/signoff."
        ),
        force: bool = typer.Option(False, "--force", help="Wrap servers with comments inside them (unwrap restores them)."),
    ) -> None:
        """Route a client's MCP servers through signoff (keeps a backup).

        Without a target, lists the configs found and what would change."""
        import signoff.wrap.apply as lib
        from signoff.wrap.clients import resolve

        options = (["--policy", policy] if policy else []) + (["--ui"] if ui else [])
        signoff = signoff_command(command, absolute)
        with exits():
            if target is None:  # the preview plans exactly what `wrap TARGET` with these options would
                _overview(
                    lambda path: lib.plan_wrap(path, options=options, signoff=signoff, force=force),
                    "would wrap",
                    held=holds(policy),
                )
                return
            plans = [lib.plan_wrap(path, options=options, signoff=signoff, force=force) for path in resolve(target)]
            for plan in plans:
                _report(plan, dry_run, "wrapped", held=holds(policy))
                if not dry_run:
                    lib.apply(plan)
        if not dry_run and any(plan.changed for plan in plans):
            typer.echo("Restart the client (or reload its MCP servers) to use the change.")
            if signoff == ["signoff"]:
                typer.echo(
                    "note: GUI clients such as Claude Desktop may not see your shell's PATH; if the servers "
                    "fail to start, run this again with --absolute."
                )

    @app.command()
    def unwrap(
        target: str = typer.Argument(None, help=_TARGET),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff; write nothing."),
    ) -> None:
        """Restore a config that `signoff wrap` changed.

        Byte for byte, if nobody edited it since."""
        import signoff.wrap.apply as lib
        from signoff.wrap.clients import resolve

        with exits():
            if target is None:
                _overview(lib.plan_unwrap, "would restore", [Path(r["path"]) for r in lib.records()])
                return
            for path in resolve(target):
                plan = lib.plan_unwrap(path)
                _report(plan, dry_run, "restored")
                if not dry_run:
                    lib.apply(plan)


def _overview(plan_for, verb: str, files: list[Path] | None = None, *, held: str = "") -> None:
    """What each detected (or recorded) file holds, writing nothing."""
    from signoff.wrap.clients import detected

    found = detected() if files is None else [("", p) for p in files]
    if not found:
        typer.echo(
            "nothing found"
            if files is not None
            else f"no MCP client config found ({', '.join(CLIENTS)}); pass a config file PATH"
        )
    for client, path in found:
        typer.echo(f"{clean(path)}{f' ({client})' if client else ''}")
        try:
            plan = plan_for(path)
        except ConfigError as exc:  # the same refusal the real command would give
            typer.echo(f"  would refuse this file: {clean(exc.detail)}")
            continue
        for name in plan.changed:
            typer.echo(f"  {verb} {clean(name)}" + (f": {held}" if held else ""))
        for reason in plan.skipped:
            typer.echo(f"  {clean(reason)}")
        if not plan.changed and not plan.skipped:
            typer.echo("  no MCP servers")


def _report(plan, dry_run: bool, verb: str, *, held: str = "") -> None:
    from signoff.wrap.text import diff

    path = clean(plan.path)
    for name in plan.changed:
        typer.echo(f"{path}: {'would be ' if dry_run else ''}{verb} {clean(name)}" + (f": {held}" if held else ""))
    for reason in plan.skipped:
        typer.echo(f"{path}: skipped {clean(reason)}")
    if not plan.changed:
        typer.echo(f"{path}: nothing to change")
    elif dry_run:
        typer.echo(diff(plan.path, plan.before, plan.after), nl=False)
