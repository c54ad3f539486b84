"""The CEL engine loads without the package's REPL and behaves like `cel`."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_engine_compiles_and_evaluates() -> None:
    from signoff.policy.cel import compile

    program = compile("amount > 100 && currency == 'USD'")
    assert program.execute({"amount": 150.5, "currency": "USD"}) is True
    with pytest.raises(ValueError):
        compile("amount >")


def test_loading_it_does_not_import_the_repl() -> None:
    code = "import sys; from signoff.policy.cel import compile; compile('1 < 2'); print('prompt_toolkit' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
