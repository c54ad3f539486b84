"""The CEL engine (common-expression-language), without the REPL its package imports.

`import cel` also imports the package's interactive shell (prompt_toolkit, ~0.1 s), which a
proxy starting inside an AI client does not need; the compiler is the native `cel.cel`
extension alone. Any surprise in that layout falls back to the normal import.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from functools import lru_cache
from types import ModuleType


@lru_cache(maxsize=1)
def engine() -> ModuleType:
    if "cel" in sys.modules:
        return sys.modules["cel"]
    spec = importlib.util.find_spec("cel")
    for directory in (spec.submodule_search_locations or []) if spec else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = f"{directory}/cel{suffix}"
            native = importlib.util.spec_from_file_location("cel.cel", path)
            if native is None or native.loader is None:
                continue
            try:
                module = importlib.util.module_from_spec(native)
                native.loader.exec_module(module)
            except (ImportError, OSError):
                continue
            if hasattr(module, "compile"):
                return module
    import cel

    return cel


def compile(expression: str):  # noqa: A001 - mirrors cel.compile
    """Compile a CEL expression (raises ValueError on a syntax error)."""
    return engine().compile(expression)
