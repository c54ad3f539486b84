"""The `signoff` command line: a thin shell over the library (each command parses and delegates)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from signoff import __version__
from signoff.cli.exits import EXIT_INTERRUPTED, exits


def _plain_help_types() -> None:
    """Help pages name a value the way Unix tools do (`--policy FILE`, `--port INTEGER`) instead
    of typer's `<str>`/`<bool>`/`<list[str]>`; arguments show only their name; the list of
    sub-commands shows each one's first sentence whole."""
    import inspect
    import re

    from typer import core

    def option_type(self: core.TyperOption, ctx: object) -> str | None:
        if self.metavar is not None:
            return self.metavar
        label = self.display_type(ctx).strip("<>")  # type: ignore[arg-type]
        label = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "list[str]": "TEXT"}.get(label, label)
        return f"[{label}]" if "|" in label else label

    def argument_name(self: core.TyperArgument) -> str:
        if self.metavar is not None:
            return self.metavar
        return self.display_name_raw.upper() + ("..." if self.nargs != 1 else "")

    def argument_usage(self: core.TyperArgument) -> str:
        name = argument_name(self)
        return name if self.required or name.startswith("[") else f"[{name}]"

    def short_help(self: core.TyperCommand, limit: int = 45) -> str:
        """A command's first sentence, whole (the list wraps it) rather than cut off with `...`."""
        if self.short_help:
            return self.short_help
        text = " ".join(inspect.cleandoc(self.help or "").split("\n\n")[0].split())
        return re.split(r"(?<=\.)\s", text, maxsplit=1)[0]

    # typer's own classes, patched for plainer help text (their stubs type the method for click's base class)
    core.TyperCommand.get_short_help_str = short_help  # type: ignore[method-assign,assignment]
    core.TyperGroup.get_short_help_str = short_help  # type: ignore[method-assign,assignment]
    core.TyperOption.display_type_rich = option_type  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    core.TyperArgument._rich_display_name = argument_name  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = argument_usage  # type: ignore[method-assign]


_plain_help_types()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"signoff {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="signoff",
    help="A transparent MCP proxy that holds risky tool calls until a human approves them.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: no boxes, no `<bool>` noise
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", is_eager=True, callback=_print_version, help="Print signoff's version and exit."
    ),
) -> None:
    """A transparent MCP proxy that holds risky tool calls until a human approves them."""


# `signoff run`'s longer options, declared once here so the command reads as its parameters.
RunCommand = Annotated[
    list[str] | None, typer.Argument(metavar="[-- COMMAND [ARGS]...]", help="The server to wrap, after `--`: COMMAND ARGS...")
]
RunConfig = Annotated[
    str | None, typer.Option("--config", "-c", metavar="FILE", help="signoff.yaml with a `servers:` section (and `policy:`).")
]
RunName = Annotated[
    str | None, typer.Option("--name", "-n", metavar="NAME", help="Name of the wrapped server (default: from the command).")
]
RunPolicy = Annotated[
    str | None,
    typer.Option(
        "--policy",
        "-p",
        metavar="FILE|PRESET",
        help="Policy file, or a preset: conservative, balanced (the default), permissive; none holds nothing.",
    ),
]
RunTimeout = Annotated[
    str | None, typer.Option("--timeout", metavar="DURATION", help="Longest wait for a wrapped server's answer (e.g. 60s, 5m).")
]
RunNotify = Annotated[
    list[str] | None, typer.Option("--notify", metavar="URL", help="Apprise URL to notify when a call is held (repeatable).")
]
RunAllowHost = Annotated[
    list[str] | None,
    typer.Option("--allow-host", metavar="HOST", help="--http: also accept requests naming this host (repeatable)."),
]
RunTokenFile = Annotated[
    str | None,
    typer.Option("--auth-token-file", metavar="FILE", help="--http: require this bearer token (or set SIGNOFF_HTTP_TOKEN)."),
]
RunIdle = Annotated[
    str | None,
    typer.Option("--http-idle-timeout", metavar="DURATION", help="--http: close sessions idle this long (default 30m)."),
]
RunNoRedact = Annotated[
    bool, typer.Option("--no-redact", help="Keep secret-looking argument values in the audit trail and notifications.")
]
RunPublicUrl = Annotated[
    str | None,
    typer.Option(
        "--public-url",
        metavar="URL",
        help="Base URL of the approval page as your phone reaches it "
        "(private network only); notifications link each held call there.",
    ),
]
RunAgent = Annotated[
    str | None,
    typer.Option(
        "--agent",
        metavar="NAME",
        help="This agent's name in the queue, the audit trail and "
        "rules (`agent == ...`); default: the client's own name (or SIGNOFF_AGENT, `agent:`).",
    ),
]
RunMachine = Annotated[
    str | None,
    typer.Option(
        "--machine", metavar="NAME", help="This machine's name (default: the hostname; or SIGNOFF_MACHINE, `machine:`)."
    ),
]
RunOwner = Annotated[
    str | None,
    typer.Option(
        "--owner",
        metavar="PERSON",
        help="Whose agent this is: rules with not_self keep them from approving its calls (or SIGNOFF_OWNER, `owner:`).",
    ),
]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Examples:\n\n  signoff run -- npx -y @modelcontextprotocol/server-filesystem ~/work\n\n"
    "  signoff run --policy balanced -- uvx mcp-server-git\n\n  signoff run --config signoff.yaml",
)
def run(
    command: RunCommand = None,
    config: RunConfig = None,
    name: RunName = None,
    policy: RunPolicy = None,
    http: str = typer.Option(None, "--http", metavar="HOST:PORT", help="Serve streamable HTTP on HOST:PORT instead of stdio."),
    timeout: RunTimeout = None,
    log_level: str = typer.Option(None, "--log-level", metavar="LEVEL", help="debug, info, warning or error (default: info)."),
    observe: bool = typer.Option(False, "--observe", help="Hold nothing; record what would have been held (to tune a policy)."),
    tty: bool = typer.Option(False, "--tty", help="Also ask on the controlling terminal (/dev/tty) when a call is held."),
    notify: RunNotify = None,
    desktop: bool = typer.Option(False, "--desktop", help="Also show a desktop notification when a call is held."),
    ui: bool = typer.Option(False, "--ui", help="Start the approval page in the background (if none runs) and log its link."),
    share: str = typer.Option(
        None, "--share", metavar="MODE", help="--http: auto (default), session (an upstream per session) or shared."
    ),
    allow_host: RunAllowHost = None,
    auth_token_file: RunTokenFile = None,
    http_idle_timeout: RunIdle = None,
    http_max_sessions: int = typer.Option(
        None, "--http-max-sessions", metavar="N", help="--http: most concurrent sessions (default 100)."
    ),
    http_max_body: int = typer.Option(
        None, "--http-max-body", metavar="BYTES", help="--http: largest request body in bytes (default 16 MiB)."
    ),
    no_redact: RunNoRedact = False,
    public_url: RunPublicUrl = None,
    agent: RunAgent = None,
    machine: RunMachine = None,
    owner: RunOwner = None,
) -> None:
    """Serve one wrapped MCP server (after --) or those in --config.

    The AI client starts this command instead of the server; calls the policy holds wait for a
    person's decision (`signoff watch`, `signoff approve`, the page, --tty)."""
    import os

    from signoff import runner

    if no_redact:
        os.environ["SIGNOFF_REDACT"] = "off"

    with exits():
        runner.main(
            command=command or [],
            config_path=config,
            name=name,
            policy=policy,
            http=http,
            timeout=timeout,
            log_level=log_level,
            observe=observe,
            tty=tty,
            notify=notify or [],
            desktop=desktop,
            ui=ui,
            public_url=public_url,
            identity={"agent": agent, "machine": machine, "owner": owner},
            http_options={
                "share": share,
                "allow_hosts": allow_host or [],
                "token_file": auth_token_file,
                "idle_timeout": http_idle_timeout,
                "max_sessions": http_max_sessions,
                "max_body": http_max_body,
            },
        )


@app.command()
def version() -> None:
    """Print signoff's version."""
    typer.echo(__version__)


from signoff.cli.policy import policy_app  # noqa: E402 - sub-apps register after the root app exists

app.add_typer(policy_app, name="policy")

from signoff.cli.queue import register as _register_queue  # noqa: E402

_register_queue(app)


from signoff.cli.ui import register as _register_ui  # noqa: E402

_register_ui(app)


from signoff.cli.wrap import register as _register_wrap  # noqa: E402

_register_wrap(app)

from signoff.cli.user import register as _register_user  # noqa: E402

_register_user(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
