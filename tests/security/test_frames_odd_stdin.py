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

from conftest import through_signoff, time_server

BOUND = 60


def run(stdin: int | None, preexec=None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGNOFF_LOG_LEVEL": "warning"}
    return subprocess.run(
        through_signoff(time_server()), stdin=stdin, capture_output=True, text=True, timeout=BOUND, env=env, preexec_fn=preexec
    )


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


def test_oversized_frame_is_refused_once_and_serving_resumes() -> None:
    """asyncio keeps an oversized line buffered; without skipping it every read failed again, forever."""
    import asyncio

    from signoff.relay import jsonrpc
    from signoff.serve.stdio import _StdioPipes

    async def read_all() -> list[object]:
        pipes = _StdioPipes(1)
        pipes.reader = asyncio.StreamReader(limit=16)  # stands for MAX_FRAME
        pipes.reader.feed_data(b"x" * 100 + b"\n" + b'{"a":1}\n' + b"y" * 40)
        pipes.reader.feed_data(b"y" * 40 + b"\n" + b'{"a":2}\n')
        pipes.reader.feed_eof()
        out: list[object] = []
        while True:
            try:
                line = await pipes.readline()
            except jsonrpc.FrameError as exc:
                out.append(str(exc).split(" ")[0])
                continue
            if not line:
                return out
            out.append(line)

    assert asyncio.run(asyncio.wait_for(read_all(), 10)) == ["frame", b'{"a":1}\n', "frame", b'{"a":2}\n']
