"""`signoff run`'s command line, on the standard library's argparse.

`run` is the process an AI client keeps alive for every wrapped server, so it must start fast and
stay small: typer (0.29) coerces each option through a pydantic TypeAdapter, which pulls
pydantic's schema machinery into the proxy (about 8 MB resident and 100 ms of start-up,
measured in benchmarks/README.md). The options are declared once, here; `signoff --help` lists the
command through typer (cli/main.py), which hands its arguments to `run_command`.

Everything after `--`, or from the first word that is not an option, is the wrapped server's
command, passed on untouched (`signoff run npx -y pkg` is `signoff run -- npx -y pkg`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from signoff.cli.exits import EXIT_USAGE, exits

DESCRIPTION = """Serve one wrapped MCP server (after --) or those in --config.

The AI client starts this command instead of the server; calls the policy holds wait for a
person's decision (`signoff watch`, `signoff approve`, the page, --tty)."""

EPILOG = """examples:
  signoff run -- npx -y @modelcontextprotocol/server-filesystem ~/work
  signoff run --policy balanced -- uvx mcp-server-git
  signoff run --config signoff.yaml"""

# (flags, metavar or None for a switch, help); `append` options may be given again.
OPTIONS: list[tuple[tuple[str, ...], str | None, str]] = [
    (("-c", "--config"), "FILE", "signoff.yaml with a `servers:` section (and `policy:`)."),
    (("-n", "--name"), "NAME", "Name of the wrapped server (default: from the command)."),
    (
        ("-p", "--policy"),
        "FILE|PRESET",
        "Policy file, or a preset: conservative, balanced (the default), permissive; none holds nothing.",
    ),
    (("--http",), "HOST:PORT", "Serve streamable HTTP on HOST:PORT instead of stdio."),
    (("--timeout",), "DURATION", "Longest wait for a wrapped server's answer (e.g. 60s, 5m)."),
    (("--log-level",), "LEVEL", "debug, info, warning or error (default: info)."),
    (("--observe",), None, "Hold nothing; record what would have been held (to tune a policy)."),
    (("--tty",), None, "Also ask on the controlling terminal (/dev/tty) when a call is held."),
    (("--notify",), "URL", "Apprise URL to notify when a call is held (repeatable)."),
    (("--desktop",), None, "Also show a desktop notification when a call is held."),
    (("--ui",), None, "Start the approval page in the background (if none runs) and log its link."),
    (("--share",), "MODE", "--http: auto (default), session (an upstream per session) or shared."),
    (("--allow-host",), "HOST", "--http: also accept requests naming this host (repeatable)."),
    (("--auth-token-file",), "FILE", "--http: require this bearer token (or set SIGNOFF_HTTP_TOKEN)."),
    (("--http-idle-timeout",), "DURATION", "--http: close sessions idle this long (default 30m)."),
    (("--http-max-sessions",), "N", "--http: most concurrent sessions (default 100)."),
    (("--http-max-body",), "BYTES", "--http: largest request body in bytes (default 16 MiB)."),
    (("--no-redact",), None, "Keep secret-looking argument values in the audit trail and notifications."),
    (
        ("--public-url",),
        "URL",
        "Base URL of the approval page as your phone reaches it (private network only); notifications link each held call there.",
    ),
    (
        ("--agent",),
        "NAME",
        "This agent's name in the queue, the audit trail and rules (`agent == ...`); "
        "default: the client's own name (or SIGNOFF_AGENT, `agent:`).",
    ),
    (("--machine",), "NAME", "This machine's name (default: the hostname; or SIGNOFF_MACHINE, `machine:`)."),
    (
        ("--owner",),
        "PERSON",
        "Whose agent this is: rules with not_self keep them from approving its calls (or SIGNOFF_OWNER, `owner:`).",
    ),
]
REPEATABLE = {"--notify", "--allow-host"}
WHOLE_NUMBERS = {"--http-max-sessions", "--http-max-body"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, like every other signoff error, and exit 2 (a usage error)."""
        sys.stderr.write(f"signoff run: {message} (see signoff run --help)\n")
        raise SystemExit(EXIT_USAGE)


def parser() -> argparse.ArgumentParser:
    made = _Parser(
        prog="signoff run",
        usage="signoff run [OPTIONS] [-- COMMAND [ARGS]...]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # `--pol` must not quietly mean --policy
    )
    for flags, metavar, text in OPTIONS:
        if metavar is None:
            made.add_argument(*flags, action="store_true", help=text)
        else:
            kind = int if flags[-1] in WHOLE_NUMBERS else str
            action = "append" if flags[-1] in REPEATABLE else "store"
            made.add_argument(*flags, metavar=metavar, action=action, type=kind, help=text)
    made.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="The server to wrap.")
    return made


def parse(argv: list[str]) -> argparse.Namespace:
    """The options before `--` (or before the first word that is not an option); the rest is the
    wrapped command, whole. A `--` after the command started belongs to the command."""
    made = parser()
    if "--" in argv:
        cut = argv.index("--")
        found = made.parse_args(argv[:cut])
        if not found.command:
            found.command = argv[cut + 1 :]
            return found
    return made.parse_args(argv)


def run_command(argv: list[str]) -> None:
    """Parse `argv` (the words after `run`) and serve until the client goes away."""
    found = parse(argv)
    from signoff import runner

    if found.no_redact:
        os.environ["SIGNOFF_REDACT"] = "off"
    with exits():
        runner.main(
            command=found.command,
            config_path=found.config,
            name=found.name,
            policy=found.policy,
            http=found.http,
            timeout=found.timeout,
            log_level=found.log_level,
            observe=found.observe,
            tty=found.tty,
            notify=found.notify or [],
            desktop=found.desktop,
            ui=found.ui,
            public_url=found.public_url,
            identity={"agent": found.agent, "machine": found.machine, "owner": found.owner},
            http_options={
                "share": found.share,
                "allow_hosts": found.allow_host or [],
                "token_file": found.auth_token_file,
                "idle_timeout": found.http_idle_timeout,
                "max_sessions": found.http_max_sessions,
                "max_body": found.http_max_body,
            },
        )
