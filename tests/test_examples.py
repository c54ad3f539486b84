"""Every example runs end to end (the scripted demo plays agent and human)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, npm_server

pytestmark = pytest.mark.e2e

EXPECT = {
    "email-payments": ["approved h-", "over budget; ask finance first", "never delete users", "hash chain intact"],
    "filesystem": ["notes.md exists now: True", "notes.md still there: True", "never allowed", "hash chain intact"],
    "git": ["Changes committed successfully", "do not discard staged work", "hash chain intact"],
}


@pytest.mark.parametrize("example", sorted(EXPECT))
def test_example_runs(example: str, tmp_path) -> None:
    if example == "filesystem":
        npm_server("server-filesystem")  # skips (or fails in CI) without `npm ci`
    env = {**os.environ, "SIGNOFF_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--example", example],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    for text in EXPECT[example]:
        assert text in done.stdout, (text, done.stdout[-3000:])
