"""`signoff wrap` / `unwrap` on each client's config format: exact restores, idempotent, careful."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import signoff.wrap.apply as lib
from signoff import runner as signoff_runner
from signoff.cli.main import app
from signoff.cli.wrap import signoff_command
from signoff.config import load_config
from signoff.errors import ConfigError
from signoff.wrap.apply import apply, is_wrapped, plan_unwrap, plan_wrap

DATA = Path(__file__).parent / "data" / "clients"
SAMPLES = sorted(p.name for p in DATA.glob("*.json"))
cli = CliRunner()


@pytest.fixture
def sample(tmp_path: Path, request) -> Path:
    path = tmp_path / request.param
    shutil.copy(DATA / request.param, path)
    return path


def entries(path: Path) -> dict[str, dict]:
    """Every server entry of a config file, by its label."""
    source = lib.load(path)
    return {
        lib.label(section, name): entry
        for section in lib.sections(source.data)
        for name, entry in lib._get(source.data, section).items()
    }


def backup(path: Path) -> Path:
    return path.with_name(path.name + ".signoff-backup")


@pytest.mark.parametrize("sample", SAMPLES, indirect=True)
def test_wrap_then_unwrap_is_byte_identical(sample: Path) -> None:
    original = sample.read_bytes()
    plan = plan_wrap(sample, options=["--policy", "balanced"])
    assert plan.changed
    apply(plan)
    assert backup(sample).read_bytes() == original
    skipped = {reason.split(":")[0] for reason in plan.skipped}
    for name, entry in entries(sample).items():
        assert is_wrapped(entry) or name in skipped
    apply(plan_unwrap(sample))
    assert sample.read_bytes() == original
    assert not backup(sample).exists() and not lib.records()  # fully restored: nothing left behind


@pytest.mark.parametrize("sample", SAMPLES, indirect=True)
def test_wrapping_twice_changes_nothing(sample: Path) -> None:
    apply(plan_wrap(sample, options=["--policy", "balanced"]))
    once = sample.read_bytes()
    second = plan_wrap(sample, options=["--policy", "balanced"])
    assert not second.changed and second.after == second.before
    apply(second)
    assert sample.read_bytes() == once


@pytest.mark.parametrize("sample", SAMPLES, indirect=True)
def test_every_wrapped_entry_is_a_valid_signoff_run(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real CLI parses each wrapped command line into the server it replaced."""
    originals = entries(sample)
    apply(plan_wrap(sample, options=["--policy", "balanced"]))
    seen: list[dict] = []
    monkeypatch.setattr(signoff_runner, "main", lambda **kwargs: seen.append(kwargs))
    for name, entry in entries(sample).items():
        if not is_wrapped(entry):
            continue
        assert entry["command"] == "signoff" and entry["args"][0] == "run"
        result = cli.invoke(app, entry["args"])
        assert result.exit_code == 0, result.output
        got, original = seen.pop(), originals[name]
        assert got["policy"] == "balanced"
        if "command" in original:
            assert got["command"] == [original["command"], *original.get("args", [])]
            assert got["name"] == lib.server_name(name.split(" ")[0])
        else:
            server = next(iter(load_config(got["config_path"]).servers.values()))
            assert server.url == (original.get("url") or original.get("serverUrl"))
            assert server.headers == original.get("headers", {})


def test_stdio_entry_keeps_its_keys_env_order_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    shutil.copy(DATA / path.name, path)
    apply(plan_wrap(path, options=["--policy", "balanced"]))
    data = json.loads(path.read_text(encoding="utf-8"))
    github = data["mcpServers"]["github"]
    assert list(github) == ["command", "args", "env"] and github["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_example"}
    assert github["args"] == [
        "run",
        "--name",
        "github",
        "--policy",
        "balanced",
        "--",
        "docker",
        "run",
        "-i",
        "--rm",
        "-e",
        "GITHUB_PERSONAL_ACCESS_TOKEN",
        "ghcr.io/github/github-mcp-server",
    ]
    assert data["mcpServers"]["filesystem"]["args"][-1] == "/Users/zoë/Documents/Über Projekte"
    text = path.read_text(encoding="utf-8")
    assert '      "args": ["run", "--name", "filesystem"' in text  # an inline array stays inline, 2-space indent kept
    assert "Über" in text and text.endswith("}\n")  # not \u-escaped; trailing newline kept


def test_http_entries_are_served_through_a_generated_config(tmp_path: Path, signoff_home: Path) -> None:
    path = tmp_path / "windsurf_mcp_config.json"
    shutil.copy(DATA / path.name, path)
    apply(plan_wrap(path, options=[]))
    linear = json.loads(path.read_text())["mcpServers"]["linear"]
    assert list(linear) == ["command", "args", "disabled"] and linear["disabled"] is True
    assert linear["args"][:2] == ["run", "--config"] and "--name" not in linear["args"]
    config = Path(linear["args"][2])
    assert config.parent == signoff_home / "wrapped" and config.stat().st_mode & 0o777 == 0o600
    assert load_config(config).servers["linear"].url == "https://mcp.linear.app/sse"
    apply(plan_unwrap(path))
    assert not config.exists()


def test_http_entries_with_client_variables_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    shutil.copy(DATA / "vscode_settings.json", path)
    plan = plan_wrap(path, options=[])
    assert plan.changed == ["memory"]
    assert plan.skipped == ["github: its URL or headers use ${…} variables that only the client expands; left as is"]


def test_comments_outside_entries_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    shutil.copy(DATA / "vscode_settings.json", path)
    apply(plan_wrap(path, options=[]))
    text = path.read_text()
    assert "// Editor" in text and "/* MCP servers: VS Code's user settings */" in text and "// runs on this machine" in text
    assert is_wrapped(lib.load(path).data["mcp"]["servers"]["memory"])


def test_comments_inside_an_entry_are_refused_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    original = '{\n  "servers": {\n    "a": {\n      // why\n      "command": "x",\n    },\n  },\n}\n'
    path.write_text(original)
    with pytest.raises(ConfigError, match=r"mcp.json:3: server 'a' has comments inside it.*pass --force"):
        plan_wrap(path, options=[])
    result = cli.invoke(app, ["wrap", str(path)])
    assert result.exit_code == 2 and "pass --force" in result.output and path.read_text() == original
    apply(plan_wrap(path, options=[], force=True))
    assert "// why" not in path.read_text()
    apply(plan_unwrap(path))
    assert path.read_text() == original  # the comment comes back with the entry


def test_crlf_and_bom_survive_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    original = b"\xef\xbb\xbf" + (DATA / path.name).read_bytes().replace(b"\n", b"\r\n")
    path.write_bytes(original)
    apply(plan_wrap(path, options=[]))
    wrapped = path.read_bytes()
    assert b"signoff" in wrapped and wrapped.count(b"\n") == wrapped.count(b"\r\n")
    apply(plan_unwrap(path))
    assert path.read_bytes() == original


def test_multiline_entries_are_laid_out_like_their_file(tmp_path: Path) -> None:
    path = tmp_path / "claude.json"
    shutil.copy(DATA / path.name, path)
    apply(plan_wrap(path, options=[]))
    text = path.read_text()
    assert '            "args": [\n                "run",\n                "--name",\n                "time",' in text


def test_dry_run_prints_a_diff_and_writes_nothing(tmp_path: Path, signoff_home: Path) -> None:
    path = tmp_path / "windsurf_mcp_config.json"
    shutil.copy(DATA / path.name, path)
    result = cli.invoke(app, ["wrap", str(path), "--dry-run", "--policy", "balanced"])
    assert result.exit_code == 0, result.output
    assert f"--- {path}" in result.output and '+      "command": "signoff",' in result.output
    assert '-      "command": "uvx",' in result.output and " would be wrapped linear" in result.output
    assert path.read_bytes() == (DATA / path.name).read_bytes() and not backup(path).exists()
    assert not (signoff_home / "wrapped").exists() and not lib.records()


def test_the_backup_is_written_first_and_never_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cursor_mcp.json"
    shutil.copy(DATA / path.name, path)
    path.chmod(0o600)
    writes: list[Path] = []
    real = lib.write_atomic
    monkeypatch.setattr(lib, "write_atomic", lambda p, *a: (writes.append(p), real(p, *a)))
    apply(plan_wrap(path, options=[]))
    assert writes[0] == backup(path) and writes[-1] == path
    assert backup(path).stat().st_mode & 0o777 == 0o600 and path.stat().st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    data["mcpServers"]["later"] = {"command": "other"}
    path.write_text(json.dumps(data, indent=2))
    apply(plan_wrap(path, options=[]))
    assert backup(path).read_bytes() == (DATA / path.name).read_bytes()


def test_unwrap_after_edits_restores_entry_by_entry(tmp_path: Path) -> None:
    path = tmp_path / "cursor_mcp.json"
    shutil.copy(DATA / path.name, path)
    apply(plan_wrap(path, options=[]))
    data = json.loads(path.read_text())
    data["mcpServers"]["added-later"] = {"command": "other"}
    data["mcpServers"]["notes"]["args"].append("--verbose")  # the user touched this one
    data["theme"] = "dark"
    path.write_text(json.dumps(data, indent=4) + "\n")  # and the client re-formatted the file
    plan = plan_unwrap(path)
    assert plan.changed == ["fetch"] and plan.skipped == ["notes: changed since it was wrapped; left as it is"]
    apply(plan)
    restored = json.loads(path.read_text())
    assert restored["mcpServers"]["fetch"] == {"command": "uvx", "args": ["mcp-server-fetch"]}
    assert restored["mcpServers"]["added-later"] == {"command": "other"} and restored["theme"] == "dark"
    assert '        "fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},' in path.read_text()
    assert is_wrapped(restored["mcpServers"]["notes"]) and lib.records()  # still on record for a later unwrap


def test_wrapping_again_with_other_options_rewraps_from_the_original(tmp_path: Path) -> None:
    path = tmp_path / "cursor_mcp.json"
    shutil.copy(DATA / path.name, path)
    apply(plan_wrap(path, options=[]))
    plain = path.read_bytes()
    apply(plan_wrap(path, options=["--policy", "strict.yaml"], signoff=["/opt/bin/signoff"]))
    fetch = json.loads(path.read_text())["mcpServers"]["fetch"]
    assert fetch == {
        "command": "/opt/bin/signoff",
        "args": ["run", "--name", "fetch", "--policy", "strict.yaml", "--", "uvx", "mcp-server-fetch"],
    }
    apply(plan_wrap(path, options=[]))
    assert path.read_bytes() == plain
    apply(plan_unwrap(path))
    assert path.read_bytes() == (DATA / path.name).read_bytes()


def test_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{\n  /* servers */\n  "mcpServers": {\n    "x": {"command": }\n  }\n}\n')
    with pytest.raises(ConfigError) as caught:
        plan_wrap(path, options=[])
    assert str(caught.value).startswith(f"{path}: not valid JSON at line 4 column 22: Expecting value; fix it")
    result = cli.invoke(app, ["wrap", str(path)])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "line 4" in result.output


def test_unknown_targets_say_what_to_do(tmp_path: Path) -> None:
    result = cli.invoke(app, ["wrap", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "no such file; give a client (claude-desktop" in result.output
    result = cli.invoke(app, ["unwrap", str(tmp_path / "nope.json")])
    assert result.exit_code == 2


def test_a_symlinked_config_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    shutil.copy(DATA / "cursor_mcp.json", real)
    link = tmp_path / "mcp.json"
    link.symlink_to(real)
    apply(plan_wrap(link, options=[]))
    assert link.is_symlink() and is_wrapped(json.loads(real.read_text())["mcpServers"]["fetch"])
    apply(plan_unwrap(link))
    assert link.is_symlink() and real.read_bytes() == (DATA / "cursor_mcp.json").read_bytes()


def test_a_file_changed_under_us_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "cursor_mcp.json"
    shutil.copy(DATA / path.name, path)
    plan = plan_wrap(path, options=[])
    path.write_text(path.read_text().replace("uvx", "pipx"))
    with pytest.raises(ConfigError, match="changed while signoff was rewriting it"):
        apply(plan)
    assert "pipx" in path.read_text() and not lib.records()


def test_recognising_wrapped_entries() -> None:
    assert is_wrapped({"command": "signoff", "args": ["run"]})
    assert is_wrapped({"command": "/home/me/.local/bin/signoff"})
    assert is_wrapped({"command": r"C:\Tools\signoff.exe"})
    assert is_wrapped({"command": "/usr/bin/python3.11", "args": ["-m", "signoff", "run", "--", "x"]})
    assert not is_wrapped({"command": "signoff-helper"})
    assert not is_wrapped({"command": "python", "args": ["-m", "other"]})


def test_how_signoff_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    assert signoff_command(None, False) == ["signoff"]
    assert signoff_command("/opt/py/bin/python -m signoff", True) == ["/opt/py/bin/python", "-m", "signoff"]
    monkeypatch.setattr("shutil.which", lambda name: "/usr/local/bin/signoff")
    assert signoff_command(None, True) == ["/usr/local/bin/signoff"]
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert signoff_command(None, True) == [sys.executable, "-m", "signoff"]


def test_a_wrapped_entry_really_runs_through_signoff(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"fake": {"command": sys.executable, "args": ["-m", "signoff.testing"]}}}))
    apply(plan_wrap(path, options=[], signoff=[sys.executable, "-m", "signoff"]))
    entry = json.loads(path.read_text())["mcpServers"]["fake"]
    assert is_wrapped(entry)
    frames = (
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            }
        )
        + "\n"
    )
    done = subprocess.run(
        [entry["command"], *entry["args"]], input=frames, capture_output=True, text=True, timeout=60, check=False
    )
    assert json.loads(done.stdout.splitlines()[0])["result"]["serverInfo"]["name"] == "fake"


def test_listing_wrapping_and_unwrapping_a_detected_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".cursor").mkdir(parents=True)
    config = home / ".cursor" / "mcp.json"
    shutil.copy(DATA / "cursor_mcp.json", config)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["wrap"])
    nothing = "nothing will be held (no --policy: every call is allowed and audited; try --policy balanced)"
    assert (
        result.exit_code == 0
        and result.output == f"{config} (cursor)\n  would wrap fetch: {nothing}\n  would wrap notes: {nothing}\n"
    )
    result = cli.invoke(app, ["wrap", "cursor"])
    assert result.exit_code == 0 and f"{config}: wrapped fetch" in result.output and "--absolute" in result.output
    assert "already through signoff" in cli.invoke(app, ["wrap"]).output
    assert cli.invoke(app, ["unwrap"]).output == f"{config}\n  would restore fetch\n  would restore notes\n"
    result = cli.invoke(app, ["unwrap", "cursor"])
    assert result.exit_code == 0 and f"{config}: restored notes" in result.output
    assert config.read_bytes() == (DATA / "cursor_mcp.json").read_bytes()
    result = cli.invoke(app, ["wrap", "windsurf"])
    assert result.exit_code == 2 and f"no windsurf MCP config found (looked at {home}" in result.output


_entry = st.fixed_dictionaries(
    {"command": st.text(min_size=1, max_size=20).filter(lambda c: not is_wrapped({"command": c}))},
    optional={
        "args": st.lists(st.text(max_size=15), max_size=4),
        "env": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
        "disabled": st.booleans(),
        "type": st.just("stdio"),
    },
)
_config = st.dictionaries(st.text(min_size=1, max_size=10), _entry, min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    servers=_config,
    indent=st.sampled_from([None, 2, 4, "\t"]),
    ascii_only=st.booleans(),
    newline=st.booleans(),
    comment=st.booleans(),
)
def test_any_config_round_trips_and_wraps_once(
    tmp_path: Path, signoff_home: Path, servers, indent, ascii_only, newline, comment
) -> None:
    shutil.rmtree(signoff_home / "wrap", ignore_errors=True)
    text = json.dumps({"mcpServers": servers, "other": [1, 2]}, indent=indent, ensure_ascii=ascii_only)
    text = ("// mine /* not an entry */\n" if comment else "") + text + ("\n" if newline else "")
    path = tmp_path / "mcp.json"
    path.write_text(text, encoding="utf-8")
    apply(plan_wrap(path, options=["--policy", "balanced"]))
    once = path.read_bytes()
    wrapped = lib.load(path).data["mcpServers"]
    assert all(is_wrapped(entry) for entry in wrapped.values()) and list(wrapped) == list(servers)
    apply(plan_wrap(path, options=["--policy", "balanced"]))
    assert path.read_bytes() == once
    apply(plan_unwrap(path))
    assert path.read_text(encoding="utf-8") == text


def test_a_record_whose_entries_are_all_gone_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "cursor_mcp.json"
    shutil.copy(DATA / path.name, path)
    apply(plan_wrap(path, options=[]))
    path.write_text('{"mcpServers": {}}\n')
    plan = plan_unwrap(path)
    assert not plan.changed and plan.skipped == ["fetch: no longer in the file", "notes: no longer in the file"]
    apply(plan)
    assert not lib.records() and path.read_text() == '{"mcpServers": {}}\n'
