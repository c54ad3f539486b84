"""One mapping from signoff's errors to the CLI's exit codes, used by every command.

    0    done
    1    no held call (or remembered approval, or person) with that id; a check found a problem
         (audit verify); team input refused (`signoff user`: a bad name, role or password)
    2    usage or configuration: a bad option, a bad config or policy file (file:line: field: what to
         do), an upstream that would not start, a decision already made by someone else
    3    the shared store cannot be used
    4    nobody waits for the call any more (its client stopped waiting, or its proxy is gone)
    5    team mode: no token, a token naming nobody, or a person whose roles may not decide the call
         (or whose vote cannot count: not_self, already approved)
    130  interrupted (Ctrl-C)

The message is one line on stderr, `signoff: ...`, with untrusted text escaped (`termsafe.clean`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from signoff.errors import (
    AlreadyDecidedError,
    CallGoneError,
    DecisionError,
    SignoffError,
    StoreError,
    TeamError,
    UnknownCallError,
    VoteRefusedError,
)
from signoff.termsafe import clean

EXIT_UNKNOWN, EXIT_USAGE, EXIT_ALREADY, EXIT_STORE, EXIT_GONE, EXIT_AUTH, EXIT_INTERRUPTED = 1, 2, 2, 3, 4, 5, 130
"""EXIT_USAGE is 2 as typer's own usage errors are."""


def fail(message: object, code: int = EXIT_USAGE) -> NoReturn:
    """Say what went wrong on one line and leave with `code`."""
    print(f"signoff: {clean(message)}", file=sys.stderr)
    raise SystemExit(code)


@contextmanager
def exits(unknown_hint: str = "") -> Iterator[None]:
    """Run a command's body; a SignoffError leaves with its exit code (see the table above)."""
    try:
        yield
    except UnknownCallError as exc:
        fail(f"{exc}{unknown_hint}", EXIT_UNKNOWN)
    except CallGoneError as exc:
        fail(exc, EXIT_GONE)
    except AlreadyDecidedError as exc:
        fail(exc, EXIT_ALREADY)
    except VoteRefusedError as exc:  # team mode: the role, not_self, or this person already approved
        fail(exc, EXIT_AUTH)
    except StoreError as exc:
        fail(exc, EXIT_STORE)
    except TeamError as exc:
        fail(exc, EXIT_UNKNOWN)
    except (DecisionError, SignoffError) as exc:  # a decision that makes no sense; config, policy, upstream
        fail(exc, EXIT_USAGE)
