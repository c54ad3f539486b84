"""`signoff wrap` (no target) previews exactly what wrapping does, each file once, and says what
the wrapped servers will hold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff.cli.main import app

DATA = Path(__file__).parent / "data" / "clients"
cli = CliRunner()
COMMENTED = '{\n  "mcpServers": {\n    "a": {\n      // why\n      "command": "x",\n    },\n  },\n}\n'


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".cursor").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


def test_wrap_from_the_home_directory_sees_each_file_once(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = home / ".cursor" / "mcp.json"
    shutil.copy(DATA / "cursor_mcp.json", config)
    monkeypatch.chdir(home)  # ~/.cursor/mcp.json is cursor's user-level and project-level file at once
    preview = cli.invoke(app, ["wrap"])
    assert preview.exit_code == 0 and preview.output.count(str(config)) == 1, preview.output
    result = cli.invoke(app, ["wrap", "cursor"])
    assert result.exit_code == 0, result.output
    assert result.output.count(f"{config}: wrapped fetch") == 1
    assert all(e["command"] == "signoff" for e in json.loads(config.read_text())["mcpServers"].values())


def test_wrap_preview_says_what_wrapping_would_refuse(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = home / ".cursor" / "mcp.json"
    config.write_text(COMMENTED)
    monkeypatch.chdir(tmp_path)
    preview = cli.invoke(app, ["wrap"])
    assert "would wrap a" not in preview.output
    assert "would refuse this file" in preview.output and "pass --force" in preview.output
    assert cli.invoke(app, ["wrap", "cursor"]).exit_code == 2  # as previewed
    forced = cli.invoke(app, ["wrap", "--force"])
    assert "  would wrap a: " in forced.output
    assert cli.invoke(app, ["wrap", "cursor", "--force"]).exit_code == 0 and config.read_text() != COMMENTED


def test_wrap_says_what_the_wrapped_servers_will_hold(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(DATA / "cursor_mcp.json", home / ".cursor" / "mcp.json")
    monkeypatch.chdir(tmp_path)
    none = cli.invoke(app, ["wrap"]).output
    assert "  would wrap fetch: nothing will be held (no --policy" in none and "try --policy balanced" in none
    preset = cli.invoke(app, ["wrap", "--policy", "balanced"]).output
    assert "  would wrap fetch: holds what the balanced preset holds (approve high-risk actions only)" in preset
    policy = tmp_path / "mine.yaml"
    policy.write_text("hitl_policies: []\n")
    done = cli.invoke(app, ["wrap", "cursor", "--policy", str(policy)]).output
    assert f": wrapped fetch: holds what {policy} holds" in done and f": wrapped notes: holds what {policy} holds" in done
