"""The `signoff` command line: a thin shell over the library (each command parses and delegates)."""

from __future__ import annotations

import typer

from signoff import __version__


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


@app.command(
    add_help_option=False,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def run(ctx: typer.Context) -> None:
    """Serve one wrapped MCP server (after --) or those in --config.

    Its options are parsed by cli/run.py (the `signoff` executable goes there directly)."""
    from signoff.cli.run import run_command

    run_command(ctx.args)


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
