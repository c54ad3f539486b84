"""`signoff wrap` / `signoff unwrap`: route an AI client's MCP servers through signoff, and back."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from signoff.errors import ConfigError
from signoff.wrap_clients import CLIENTS

_TARGET = f"A client ({', '.join(CLIENTS)}) or a config file PATH; none lists what would change."


def signoff_command(explicit: str | None, absolute: bool) -> list[str]:
    """How the client should start signoff. GUI clients often lack the shell's PATH, hence --absolute."""
    if explicit:
        return shlex.split(explicit)
    if not absolute:
        return ["signoff"]
    found = shutil.which("signoff")
    return [os.path.abspath(found)] if found else [sys.executable, "-m", "signoff"]


def register(app: typer.Typer) -> None:
    @app.command()
    def wrap(
        target: str = typer.Argument(None, help=_TARGET),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff; write nothing."),
        policy: str = typer.Option(None, "--policy", metavar="FILE|PRESET", help="Add --policy POLICY to every wrapped server."),
        ui: bool = typer.Option(False, "--ui", help="Add --ui (start the approval page) to every wrapped server."),
        absolute: bool = typer.Option(False, "--absolute", help="Write signoff's full path (GUI clients often lack your PATH)."),
        command: str = typer.Option(None, "--signoff-command", metavar="COMMAND", help="The command that starts signoff, e.g. /opt/bin/signoff."),
        force: bool = typer.Option(False, "--force", help="Wrap servers with comments inside them (unwrap restores them)."),
    ) -> None:
        """Route a client's MCP servers through signoff (keeps a backup).

        Without a target, lists the configs found and what would change."""
        from signoff import wrap as lib
        from signoff.wrap_clients import resolve

        options = (["--policy", policy] if policy else []) + (["--ui"] if ui else [])
        signoff = signoff_command(command, absolute)
        with _errors():
            if target is None:
                _overview(lambda path: lib.plan_wrap(path, options=options, signoff=signoff, force=True), "would wrap")
                return
            plans = [lib.plan_wrap(path, options=options, signoff=signoff, force=force) for path in resolve(target)]
            for plan in plans:
                _report(plan, dry_run, "wrapped")
                if not dry_run:
                    lib.apply(plan)
        if not dry_run and any(plan.changed for plan in plans):
            typer.echo("Restart the client (or reload its MCP servers) to use the change.")
            if signoff == ["signoff"]:
                typer.echo("note: GUI clients such as Claude Desktop may not see your shell's PATH; if the servers "
                           "fail to start, run this again with --absolute.")

    @app.command()
    def unwrap(
        target: str = typer.Argument(None, help=_TARGET),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff; write nothing."),
    ) -> None:
        """Restore a config that `signoff wrap` changed.

        Byte for byte, if nobody edited it since."""
        from signoff import wrap as lib
        from signoff.wrap_clients import resolve

        with _errors():
            if target is None:
                _overview(lib.plan_unwrap, "would restore", [Path(r["path"]) for r in lib.records()])
                return
            for path in resolve(target):
                plan = lib.plan_unwrap(path)
                _report(plan, dry_run, "restored")
                if not dry_run:
                    lib.apply(plan)


@contextmanager
def _errors() -> Iterator[None]:
    """A ConfigError becomes one line naming the file and what to do, and exit code 2."""
    try:
        yield
    except ConfigError as exc:
        typer.echo(f"signoff: {exc}", err=True)
        raise typer.Exit(2) from None


def _overview(plan_for, verb: str, files: list[Path] | None = None) -> None:
    """What each detected (or recorded) file holds, writing nothing."""
    from signoff.wrap_clients import detected

    found = detected() if files is None else [("", p) for p in files]
    if not found:
        typer.echo("nothing found" if files is not None else
                   f"no MCP client config found ({', '.join(CLIENTS)}); pass a config file PATH")
    for client, path in found:
        typer.echo(f"{path}{f' ({client})' if client else ''}")
        try:
            plan = plan_for(path)
        except ConfigError as exc:
            typer.echo(f"  cannot read it: {exc.detail}")
            continue
        for name in plan.changed:
            typer.echo(f"  {verb} {name}")
        for reason in plan.skipped:
            typer.echo(f"  {reason}")
        if not plan.changed and not plan.skipped:
            typer.echo("  no MCP servers")


def _report(plan, dry_run: bool, verb: str) -> None:
    from signoff.wrap_text import diff

    for name in plan.changed:
        typer.echo(f"{plan.path}: {'would be ' if dry_run else ''}{verb} {name}")
    for reason in plan.skipped:
        typer.echo(f"{plan.path}: skipped {reason}")
    if not plan.changed:
        typer.echo(f"{plan.path}: nothing to change")
    elif dry_run:
        typer.echo(diff(plan.path, plan.before, plan.after), nl=False)
