"""`signoff wrap` / `signoff unwrap`: route an AI client's MCP servers through signoff, and back."""

from __future__ import annotations

import shutil

import typer

from signoff.errors import ConfigError

CLIENTS = "claude-desktop, claude-code, cursor, vscode, windsurf"


def register(app: typer.Typer) -> None:
    @app.command()
    def wrap(
        target: str = typer.Argument(None, help=f"A client ({CLIENTS}) or a config file PATH; none lists what is found."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff; write nothing."),
        policy: str = typer.Option(None, "--policy", help="Add --policy POLICY to every wrapped server."),
        ui: bool = typer.Option(False, "--ui", help="Add --ui (start the approval page) to every wrapped server."),
        absolute: bool = typer.Option(False, "--absolute", help="Use signoff's full path (GUI clients often lack your PATH)."),
        force: bool = typer.Option(False, "--force", help="Rewrite a file with comments (they are lost)."),
    ) -> None:
        """Rewrite a client's MCP config so every server runs through signoff (a backup is kept)."""
        from signoff import wrap as lib

        options = (["--policy", policy] if policy else []) + (["--ui"] if ui else [])
        command = (shutil.which("signoff") or "signoff") if absolute else "signoff"
        try:
            files = lib.resolve_targets(target)
            if target is None:
                _list(files)
                return
            for path in files:
                plan = lib.plan_wrap(path, options=options, signoff=command, force=force)
                _report(plan, dry_run, "wrapped")
                if not dry_run:
                    lib.apply_wrap(plan)
        except ConfigError as exc:
            typer.echo(f"signoff: {exc}", err=True)
            raise typer.Exit(2) from None
        if not absolute and not dry_run:
            typer.echo("note: GUI clients (Claude Desktop) may not find `signoff` on their PATH; use --absolute if so.")

    @app.command()
    def unwrap(
        target: str = typer.Argument(..., help=f"A client ({CLIENTS}) or a config file PATH."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff; write nothing."),
        force: bool = typer.Option(False, "--force", help="Rewrite a file with comments (they are lost)."),
    ) -> None:
        """Restore a config that `signoff wrap` changed (exactly, if nobody edited it since)."""
        from signoff import wrap as lib

        try:
            for path in lib.resolve_targets(target):
                plan = lib.plan_unwrap(path, force=force)
                _report(plan, dry_run, "restored")
                if not dry_run:
                    lib.apply_unwrap(plan)
        except ConfigError as exc:
            typer.echo(f"signoff: {exc}", err=True)
            raise typer.Exit(2) from None


def _list(files) -> None:
    from signoff import wrap as lib

    if not files:
        typer.echo("no MCP client config found; pass a client name or a PATH")
    for path in files:
        try:
            _, data = lib.load(path, force=True)
        except ConfigError as exc:
            typer.echo(f"{path}: {exc}")
            continue
        entries = [(name, entry) for _, table in lib.sections(data) for name, entry in table.items() if isinstance(entry, dict)]
        done = sum(1 for _, e in entries if lib.is_wrapped(e))
        typer.echo(f"{path}: {len(entries)} servers, {done} already through signoff")


def _report(plan, dry_run: bool, verb: str) -> None:
    from signoff import wrap as lib

    for label in plan.changed:
        typer.echo(f"{plan.path}: {verb} {label}")
    for label in plan.skipped:
        typer.echo(f"{plan.path}: skipped {label}")
    if not plan.changed:
        typer.echo(f"{plan.path}: nothing to change")
    elif dry_run:
        typer.echo(lib.diff(plan.path, plan.before, plan.after), nl=False)
