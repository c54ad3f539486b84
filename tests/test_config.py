"""signoff.yaml: the `servers:` shape AI clients use, with errors that say file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.config import command_name, load_config
from signoff.durations import parse_duration
from signoff.errors import ConfigError
from signoff.runner import server_specs


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "signoff.yaml"
    path.write_text(text)
    return path


def test_servers_and_mcpservers_shapes(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
mcpServers:
  files:
    command: npx
    args: ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
    env: {DEBUG: 1}
  remote:
    url: https://mcp.example.com/sse
    headers: {Authorization: Bearer x}
  api:
    type: streamable-http
    url: https://mcp.example.com/mcp
    timeout: 2m
  spare:
    command: nope
    disabled: true
policy: balanced
""",
        )
    )
    specs = {s.name: s for s in server_specs(config)}
    assert set(specs) == {"files", "remote", "api"}
    assert specs["files"].env == {"DEBUG": "1"} and specs["files"].transport == "stdio"
    assert specs["remote"].transport == "sse" and specs["remote"].headers["Authorization"] == "Bearer x"
    assert specs["api"].transport == "http" and specs["api"].timeout == 120
    assert config.policy == "balanced"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "servers:\n  a:\n    comand: x\n",
            "signoff.yaml:3: servers.a.comand: unknown key 'comand'; allowed here: command, args",
        ),
        ("servers:\n  a:\n    args: [x]\n", "signoff.yaml:2: servers.a: give either `command`"),
        ("servers:\n  'bad name':\n    command: x\n", "signoff.yaml:2: servers.bad name: server name 'bad name' may use only"),
        (
            "servers:\n  a:\n    command: x\n    timeout: forever\n",
            "signoff.yaml:4: servers.a.timeout: 'forever' is not a duration",
        ),
        ("servers: [\n", "signoff.yaml:2: invalid YAML"),
    ],
)
def test_config_errors_name_file_line_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert str(caught.value).endswith(str(caught.value).split(": ", 1)[1])
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(expected), str(caught.value)


def test_relative_policy_path_is_relative_to_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "servers:\n  a:\n    command: x\npolicy: rules/p.yaml\n"))
    assert config.policy == str(tmp_path / "rules" / "p.yaml")


def test_durations_and_names() -> None:
    assert parse_duration("500ms") == 0.5 and parse_duration("5m") == 300 and parse_duration(30) == 30
    with pytest.raises(ValueError):
        parse_duration("0s")
    assert command_name(["npx", "-y", "@modelcontextprotocol/server-filesystem", "/tmp"]) == "filesystem"
    assert command_name(["uvx", "mcp-server-git"]) == "git"
    assert command_name(["mcp-server-time"]) == "time"
    assert command_name(["node", "/x/server-everything/dist/index.js"]) == "server-everything".replace("server-", "")


def test_share_mode_per_server(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "servers:\n  a:\n    command: x\n    share: session\n  b:\n    command: y\n"))
    specs = {s.name: s for s in server_specs(config)}
    assert specs["a"].share == "session" and specs["b"].share == "auto"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "servers:\n  a:\n    command: x\n    share: everyone\n"))
    assert "share" in str(caught.value)
