"""Where each AI client keeps its MCP config, so `signoff wrap cursor` needs no path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from signoff.errors import ConfigError

CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode", "windsurf")


def _app_dir(home: Path) -> Path:
    """The per-user application data directory GUI apps (Claude Desktop, VS Code) write to."""
    if sys.platform == "darwin":
        return home / "Library" / "Application Support"
    if os.name == "nt":
        return Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")


def client_files(home: Path | None = None, cwd: Path | None = None) -> dict[str, list[Path]]:
    """Each client's user-level and project-level MCP config files on this platform."""
    home = home or Path.home()
    cwd = cwd or Path.cwd()
    app = _app_dir(home)
    return {
        "claude-desktop": [app / "Claude" / "claude_desktop_config.json"],
        "claude-code": [home / ".claude.json", cwd / ".mcp.json"],
        "cursor": [home / ".cursor" / "mcp.json", cwd / ".cursor" / "mcp.json"],
        "vscode": [app / "Code" / "User" / "mcp.json", cwd / ".vscode" / "mcp.json"],
        "windsurf": [home / ".codeium" / "windsurf" / "mcp_config.json"],
    }


def _once(found: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Each file once (by its resolved path): run from the home directory, a client's
    project-level and user-level paths are the same file."""
    seen: set[Path] = set()
    unique = []
    for client, path in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append((client, path))
    return unique


def detected() -> list[tuple[str, Path]]:
    """(client, file) for every client config that exists here, each file once."""
    return _once([(client, path) for client, files in client_files().items() for path in files if path.is_file()])


def resolve(target: str) -> list[Path]:
    """A client name (its existing config files) or a config file's path."""
    files = client_files()
    if target in files:
        found = [path for _, path in _once([(target, p) for p in files[target] if p.is_file()])]
        if not found:
            looked = ", ".join(str(p) for p in files[target])
            raise ConfigError(f"no {target} MCP config found (looked at {looked}); pass the config file's PATH")
        return found
    path = Path(target).expanduser()
    if not path.is_file():
        raise ConfigError(f"no such file; give a client ({', '.join(CLIENTS)}) or a config file PATH", path=str(path))
    return [path]


def client_for(path: Path) -> str:
    """The client a file belongs to (for naming generated files), or the file's stem."""
    resolved = path.resolve()
    for client, candidates in client_files().items():
        if resolved in (c.resolve() for c in candidates):
            return client
    return path.stem
