"""The `signoff` command line: a thin shell over the library (each command parses and delegates)."""

from __future__ import annotations

import sys

import typer

from signoff import __version__
from signoff.errors import SignoffError

app = typer.Typer(
    name="signoff",
    help="A transparent MCP proxy that holds risky tool calls until a human approves them.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Examples:\n\n  signoff run -- npx -y @modelcontextprotocol/server-filesystem ~/work\n\n"
    "  signoff run --policy balanced -- uvx mcp-server-git\n\n  signoff run --config signoff.yaml",
)
def run(
    command: list[str] = typer.Argument(None, help="The server to wrap, after `--`: COMMAND ARGS..."),
    config: str = typer.Option(None, "--config", "-c", help="signoff.yaml with a `servers:` section (and `policy:`)."),
    name: str = typer.Option(None, "--name", "-n", help="Name of the wrapped server (default: from the command)."),
    policy: str = typer.Option(None, "--policy", "-p", help="Policy file, or a preset: conservative, balanced, permissive."),
    http: str = typer.Option(None, "--http", help="Serve streamable HTTP on HOST:PORT instead of stdio."),
    timeout: str = typer.Option(None, "--timeout", help="Longest wait for a wrapped server's answer (e.g. 60s, 5m)."),
    log_level: str = typer.Option(None, "--log-level", help="debug, info, warning or error (default: info)."),
    observe: bool = typer.Option(False, "--observe", help="Hold nothing; record what would have been held (to tune a policy)."),
    tty: bool = typer.Option(False, "--tty", help="Also ask on the controlling terminal (/dev/tty) when a call is held."),
    notify: list[str] = typer.Option(None, "--notify", help="Apprise URL to notify when a call is held (repeatable)."),
    desktop: bool = typer.Option(False, "--desktop", help="Also show a desktop notification when a call is held."),
    ui: bool = typer.Option(False, "--ui", help="Start the approval page in the background (if none runs) and log its link."),
    no_redact: bool = typer.Option(False, "--no-redact", help="Keep secret-looking argument values in the audit trail and notifications."),
) -> None:
    """Serve MCP to an AI client, wrapping one server (after `--`) or those in --config."""
    import os

    from signoff import runner

    if no_redact:
        os.environ["SIGNOFF_REDACT"] = "off"

    try:
        runner.main(command=command or [], config_path=config, name=name, policy=policy, http=http,
                    timeout=timeout, log_level=log_level, observe=observe, tty=tty, notify=notify or [], desktop=desktop,
                    ui=ui)
    except SignoffError as exc:
        typer.echo(f"signoff: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def version() -> None:
    """Print signoff's version."""
    typer.echo(__version__)


from signoff.cli_policy import policy_app  # noqa: E402 - sub-apps register after the root app exists

app.add_typer(policy_app, name="policy")

from signoff.cli_queue import register as _register_queue  # noqa: E402

_register_queue(app)


from signoff.cli_ui import register as _register_ui  # noqa: E402

_register_ui(app)


from signoff.cli_wrap import register as _register_wrap  # noqa: E402

_register_wrap(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
