"""The `signoff` executable: `signoff run` goes straight to its own small parser (cli/run.py);
every other command loads the typer application (cli/main.py)."""

from __future__ import annotations

import sys

from signoff.cli.exits import EXIT_INTERRUPTED


def main() -> None:
    try:
        if sys.argv[1:2] == ["run"]:
            from signoff.cli.run import run_command

            run_command(sys.argv[2:])
            return
        from signoff.cli.main import app

        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
