"""Attack: corrupt the policy file under running proxies so that they crash (and the in-flight call
gets no answer) or come back unguarded. Every failed reload must keep the last good policy."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from conftest import connect, fake_server, through_signoff
from signoff.policy.engine import load_policy
from signoff.policy.reload import PolicyHolder

GOOD = "hitl_policies:\n  - tool: '*.echo'\n    decision: deny\n    reason: echo is off\n"

CORRUPTIONS = {
    "non_utf8": lambda p: p.write_bytes(b"hitl_policies:\n  - tool: '\xff\xfe*.echo'\n"),
    "deep_nesting": lambda p: p.write_text("a: " + "{b: " * 20000 + "1" + "}" * 20000),
    "directory_in_its_place": lambda p: (p.unlink(), p.mkdir()),
    "vanished": lambda p: p.unlink(),
    "binary_garbage": lambda p: p.write_bytes(os.urandom(4096)),
}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("corrupt", sorted(CORRUPTIONS))
def test_corrupt_policy_edit_keeps_the_last_good_policy(tmp_path: Path, corrupt: str, caplog) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    clock = Clock()
    holder = PolicyHolder(str(path), load_policy, interval=1.0, clock=clock)
    good = holder.get()
    CORRUPTIONS[corrupt](path)
    clock.now = 2.0
    with caplog.at_level(logging.ERROR, logger="signoff.policy"):
        assert holder.get() is good
    assert "keeping the last good policy" in caplog.text
    if path.is_dir():
        path.rmdir()
    path.write_text(GOOD.replace("echo is off", "echo is still off"))  # a good edit after the bad one applies
    clock.now = 4.0
    assert holder.get() is not good and holder.last_error is None


def test_unreadable_policy_keeps_the_last_good_policy(tmp_path: Path, monkeypatch) -> None:
    """Permission denied (as root chmod does not stop us, so the loader itself is refused)."""
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    clock = Clock()

    def loader(source: str):
        if clock.now > 1:
            raise PermissionError(13, "Permission denied", source)
        return load_policy(source)

    holder = PolicyHolder(str(path), loader, interval=1.0, clock=clock)
    good = holder.get()
    path.write_text(GOOD + "\n")
    clock.now = 2.0
    assert holder.get() is good and "PermissionError" in (holder.last_error or "")


@pytest.mark.anyio
@pytest.mark.e2e
async def test_policy_corrupted_mid_session_does_not_kill_the_proxy(tmp_path: Path) -> None:
    """A real `signoff run`: after each corruption the next call is answered by the last good policy."""
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    env = {"SIGNOFF_POLICY_RELOAD_INTERVAL": "0"}
    async with connect(through_signoff(fake_server(), "--policy", str(path)), env=env) as client:
        with anyio.fail_after(60):
            first = await client.call_tool("echo", {"text": "x"})
            assert first.is_error and "echo is off" in first.content[0].text
            for name in ("non_utf8", "deep_nesting", "binary_garbage", "directory_in_its_place", "vanished"):
                if path.is_dir():
                    shutil.rmtree(path)
                path.write_text(GOOD)
                CORRUPTIONS[name](path)
                answer = await client.call_tool("echo", {"text": "x"})
                assert answer.is_error and "echo is off" in answer.content[0].text, name
                assert (await client.call_tool("write_file", {"path": str(tmp_path / "w"), "content": "1"})).is_error is False


def test_deeply_nested_edit_is_refused_before_the_parser_stalls_the_proxy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    clock = Clock()
    holder = PolicyHolder(str(path), load_policy, interval=1.0, clock=clock)
    good = holder.get()
    path.write_bytes(b"hitl_policies: " + b"[" * 100_000 + b"]" * 100_000)  # ~4 s in the YAML parser
    clock.now = 2.0
    started = time.monotonic()
    assert holder.get() is good
    assert time.monotonic() - started < 0.5 and "nested deeper than 64" in (holder.last_error or "")


@pytest.mark.parametrize("content", [b"\xff\xfe policy", b"a: " + b"{b: " * 5000 + b"1" + b"}" * 5000], ids=["non_utf8", "deep"])
def test_corrupt_policy_at_start_is_one_clean_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "signoff", "run", "--policy", str(path), "--", *fake_server()],
        capture_output=True,
        text=True,
        timeout=60,
        input="",
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith(f"signoff: {path}")
    assert "Traceback" not in done.stderr
