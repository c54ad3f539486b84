"""`signoff wrap` / `unwrap` on each client's config format: exact restores, idempotent, careful."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff.cli import app
from signoff.config import load_config
from signoff.errors import ConfigError
from signoff.wrap import apply_unwrap, apply_wrap, is_wrapped, plan_unwrap, plan_wrap, sections

DATA = Path(__file__).parent / "data" / "clients"
SAMPLES = sorted(p.name for p in DATA.glob("*.json"))
runner = CliRunner()


@pytest.fixture
def sample(tmp_path: Path, request) -> Path:
    path = tmp_path / request.param
    shutil.copy(DATA / request.param, path)
    return path


@pytest.mark.parametrize("sample", SAMPLES, indirect=True)
def test_wrap_then_unwrap_is_byte_identical(sample: Path) -> None:
    original = sample.read_bytes()
    plan = plan_wrap(sample, options=["--policy", "balanced"])
    assert plan.changed
    apply_wrap(plan)
    wrapped = json.loads(sample.read_text())
    for _, table in sections(wrapped):
        for entry in table.values():
            assert is_wrapped(entry)
    assert sample.with_name(sample.name + ".signoff-backup").read_bytes() == original
    apply_unwrap(plan_unwrap(sample))
    assert sample.read_bytes() == original


@pytest.mark.parametrize("sample", SAMPLES, indirect=True)
def test_wrapping_twice_changes_nothing(sample: Path) -> None:
    apply_wrap(plan_wrap(sample, options=[]))
    once = sample.read_bytes()
    second = plan_wrap(sample, options=[])
    assert not second.changed and all("already wrapped" in s for s in second.skipped)
    apply_wrap(second)
    assert sample.read_bytes() == once


@pytest.mark.parametrize("sample", ["claude_desktop_config.json"], indirect=True)
def test_stdio_entry_keeps_its_keys_env_and_order(sample: Path) -> None:
    apply_wrap(plan_wrap(sample, options=["--policy", "balanced"]))
    entry = json.loads(sample.read_text())["mcpServers"]["github"]
    assert list(entry) == ["command", "args", "env"] and entry["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_example"}
    assert entry["command"] == "signoff"
    assert entry["args"] == ["run", "--name", "github", "--policy", "balanced", "--", "docker", "run", "-i", "--rm",
                             "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"]
    fs = json.loads(sample.read_text())["mcpServers"]["filesystem"]
    assert fs["args"][-1] == "/Users/zoë/Documents/Über Projekte"
    assert json.loads(sample.read_text())["globalShortcut"] == "Ctrl+Space"


@pytest.mark.parametrize("sample", ["claude.json"], indirect=True)
def test_http_entries_become_a_generated_signoff_config(sample: Path, signoff_home: Path) -> None:
    apply_wrap(plan_wrap(sample, options=[]))
    project = json.loads(sample.read_text())["projects"]["/home/dev/app"]["mcpServers"]
    remote = project["remote"]
    assert remote["type"] == "stdio" and remote["command"] == "signoff" and remote["args"][:2] == ["run", "--config"]
    config = load_config(remote["args"][2])
    assert config.servers["remote"].url == "https://mcp.example.com/mcp"
    assert config.servers["remote"].headers == {"Authorization": "Bearer abc"}
    assert project["git"]["args"][:3] == ["run", "--name", "git"]


@pytest.mark.parametrize("sample", ["cursor_mcp.json"], indirect=True)
def test_dry_run_prints_a_diff_and_writes_nothing(sample: Path) -> None:
    before = sample.read_bytes()
    result = runner.invoke(app, ["wrap", str(sample), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"--- {sample}" in result.output and '+      "command": "signoff"' in result.output.replace("\t", "  ")
    assert sample.read_bytes() == before
    assert not sample.with_name(sample.name + ".signoff-backup").exists()


@pytest.mark.parametrize("sample", ["cursor_mcp.json"], indirect=True)
def test_unwrap_after_an_edit_restores_entries_one_by_one(sample: Path) -> None:
    apply_wrap(plan_wrap(sample, options=[]))
    data = json.loads(sample.read_text())
    data["mcpServers"]["added-later"] = {"command": "other"}
    data["mcpServers"]["notes"]["args"].append("--verbose")  # the user touched this one
    sample.write_text(json.dumps(data, indent=2) + "\n")
    plan = plan_unwrap(sample)
    apply_unwrap(plan)
    restored = json.loads(sample.read_text())["mcpServers"]
    assert restored["fetch"] == {"command": "uvx", "args": ["mcp-server-fetch"]}
    assert restored["added-later"] == {"command": "other"}
    assert is_wrapped(restored["notes"]) and any("changed since" in s for s in plan.skipped)


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{\n  "mcpServers": {\n    "x": {"command": }\n  }\n}\n')
    with pytest.raises(ConfigError) as caught:
        plan_wrap(path, options=[])
    assert str(caught.value).startswith(f"{path}:3: not valid JSON")
    result = runner.invoke(app, ["wrap", str(path)])
    assert result.exit_code == 2 and f"{path}:3" in result.output


def test_comments_are_refused_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{\n  // my servers\n  "servers": {"a": {"command": "x",},},\n}\n')
    with pytest.raises(ConfigError, match="has comments"):
        plan_wrap(path, options=[])
    assert plan_wrap(path, options=[], force=True).changed == ["servers/a"]


def test_a_wrapped_entry_really_runs_through_signoff(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"fake": {"command": sys.executable, "args": ["-m", "signoff.testing"]}}}))
    apply_wrap(plan_wrap(path, options=[], signoff=sys.executable))
    entry = json.loads(path.read_text())["mcpServers"]["fake"]
    command = [entry["command"], "-m", "signoff", *entry["args"]]
    frames = (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}) + "\n")
    done = subprocess.run(command, input=frames, capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout.splitlines()[0])["result"]["serverInfo"]["name"] == "fake"


def test_listing_detected_clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".cursor").mkdir(parents=True)
    shutil.copy(DATA / "cursor_mcp.json", home / ".cursor" / "mcp.json")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["wrap"])
    assert result.exit_code == 0 and "mcp.json: 2 servers, 0 already through signoff" in result.output
    result = runner.invoke(app, ["wrap", "cursor"])
    assert result.exit_code == 0 and "wrapped mcpServers/fetch" in result.output
    assert runner.invoke(app, ["unwrap", "cursor"]).exit_code == 0
    assert (home / ".cursor" / "mcp.json").read_bytes() == (DATA / "cursor_mcp.json").read_bytes()
    assert runner.invoke(app, ["wrap", "windsurf"]).exit_code == 2
