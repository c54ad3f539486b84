"""The benchmarks run and print their tables (CI-sized `--smoke` runs). No timing is asserted:
figures on a shared CI machine mean nothing; benchmarks/README.md records real ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def smoke(script: str, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "SIGNOFF_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (
        f"{script} --smoke exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    )
    return done.stdout


@pytest.mark.timeout(150)
def test_bench_proxy_smoke(tmp_path: Path) -> None:
    out = smoke("bench_proxy.py", tmp_path)
    assert "mean ms" in out and "p99 ms" in out


@pytest.mark.timeout(150)
def test_bench_peers_smoke(tmp_path: Path) -> None:
    out = smoke("bench_peers.py", tmp_path)
    for header in ("== stdio latency", "== streamable HTTP throughput", "== memory and start-up"):
        assert header in out
    assert "calls/s" in out and "start-up ms" in out


@pytest.mark.timeout(150)
def test_bench_policy_smoke(tmp_path: Path) -> None:
    out = smoke("bench_policy.py", tmp_path)
    assert "held call p50 µs" in out and "1000" in out


@pytest.mark.timeout(150)
def test_bench_decision_smoke(tmp_path: Path) -> None:
    out = smoke("bench_decision.py", tmp_path)
    assert "audit row append" in out and "`signoff approve` launched" in out


@pytest.mark.postgres
@pytest.mark.timeout(150)
@pytest.mark.parametrize("via", ["store", "page,cli"])
def test_bench_team_smoke(tmp_path: Path, via: str) -> None:
    from pg_server import bindir

    if bindir() is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) found: install Debian's `postgresql` package")
    out = smoke("bench_team.py", tmp_path, "--via", via)
    assert "all answered: True, duplicates: 0" in out and "decision -> result at client: p50" in out
    assert "audit verify:" in out and "rows, OK" in out and "kill switch" in out
