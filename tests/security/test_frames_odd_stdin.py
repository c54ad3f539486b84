"""Issue #10 item 9b: `signoff run` with an empty or closed standard input ends cleanly.

Before: `</dev/null` left an asyncio traceback (epoll refuses /dev/null) and never exited;
`<&-` died with `AttributeError: 'NoneType' object has no attribute 'buffer'` (and `>&-` with
one about `flush`). Now each ends promptly with one line on stderr saying why and a defined exit
code (0 for end of input, 2 for a closed stdin or stdout, like every other usage error of
`signoff run`).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import time_server, through_signoff

BOUND = 60


def run(stdin: int | None, preexec=None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGNOFF_LOG_LEVEL": "warning"}
    return subprocess.run(through_signoff(time_server()), stdin=stdin, capture_output=True, text=True,
                          timeout=BOUND, env=env, preexec_fn=preexec)


def _close_stdin() -> None:
    os.close(0)


def _close_stdout() -> None:
    os.close(1)


def test_stdin_from_dev_null_exits_cleanly() -> None:
    done = run(subprocess.DEVNULL)
    assert done.returncode == 0
    assert "Traceback" not in done.stderr and "Exception" not in done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if "standard input" in ln]
    assert "ended before any message" in line
    assert done.stdout == ""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file descriptors")
def test_closed_stdin_exits_with_one_line() -> None:
    done = run(None, preexec=_close_stdin)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "AttributeError" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("signoff: standard input is closed")
    assert done.stdout == ""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file descriptors")
def test_closed_stdout_exits_with_one_line() -> None:
    done = run(subprocess.DEVNULL, preexec=_close_stdout)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "AttributeError" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("signoff: standard output is closed")
