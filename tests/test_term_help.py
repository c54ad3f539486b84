"""Help pages read like a Unix tool's: no `<bool>`/`<str>` type noise, no boxes, `--version` works."""

from __future__ import annotations

import re

import click
import typer
from typer.testing import CliRunner

from signoff import __version__
from signoff.cli.main import app

NOISE = re.compile(r"<(bool|str|int|float|list\[[a-z]+\])>|[{}]\w+[{}]|╭|│")


def every_command(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if getattr(group, "commands", None):
        for name, command in group.commands.items():
            found += every_command(command, (*path, name))
    return found


def test_term_every_help_page_is_free_of_type_noise() -> None:
    commands = every_command(typer.main.get_command(app))
    assert ("run",) in commands and ("rules", "revoke") in commands and ("audit", "export") in commands
    for path in commands:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        assert not NOISE.search(result.output), f"signoff {' '.join(path)} --help:\n{result.output}"
        listed = result.output.partition("\nCommands:\n")[2]  # sub-commands' short help is not cut off
        assert "..." not in listed, f"signoff {' '.join(path)} --help:\n{result.output}"
    run = CliRunner().invoke(app, ["run", "--help"]).output
    assert "--policy FILE|PRESET" in run and "--http HOST:PORT" in run and "--tty " in run


def test_term_version_option() -> None:
    for flag in ("--version", "-V"):
        result = CliRunner().invoke(app, [flag])
        assert result.exit_code == 0 and result.output == f"signoff {__version__}\n"
