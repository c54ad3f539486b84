"""`signoff wrap` / `unwrap`: put every server of an AI client's MCP config behind signoff, and back.

A stdio entry `{"command": C, "args": A, …}` becomes `{"command": "signoff", "args": ["run",
"--name", NAME, …, "--", C, *A], …}` with every other key kept in place; an HTTP entry is
moved into a small generated signoff.yaml that `signoff run --config` serves over stdio. What
was there is recorded under SIGNOFF_HOME (clients reject unknown keys, so nothing is added to
the entries) and a backup is written next to the file first. Unwrapping a file nobody edited
since restores its exact bytes; otherwise each wrapped entry is put back one by one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signoff import paths
from signoff.errors import ConfigError

SECTION_KEYS = ("mcpServers", "servers")
_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def client_files(home: Path | None = None, cwd: Path | None = None) -> dict[str, list[Path]]:
    """Where each client keeps its MCP config on this platform (user and project files)."""
    home = home or Path.home()
    cwd = cwd or Path.cwd()
    if sys.platform == "darwin":
        desktop = home / "Library" / "Application Support" / "Claude"
    elif os.name == "nt":
        desktop = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming")) / "Claude"
    else:
        desktop = home / ".config" / "Claude"
    return {
        "claude-desktop": [desktop / "claude_desktop_config.json"],
        "claude-code": [home / ".claude.json", cwd / ".mcp.json"],
        "cursor": [home / ".cursor" / "mcp.json", cwd / ".cursor" / "mcp.json"],
        "vscode": [cwd / ".vscode" / "mcp.json"],
        "windsurf": [home / ".codeium" / "windsurf" / "mcp_config.json"],
    }


def resolve_targets(target: str | None) -> list[Path]:
    """A client name (its existing config files) or a path."""
    files = client_files()
    if target is None:
        return [p for paths_ in files.values() for p in paths_ if p.exists()]
    if target in files:
        found = [p for p in files[target] if p.exists()]
        if not found:
            raise ConfigError(f"no {target} MCP config found (looked at {', '.join(str(p) for p in files[target])}); pass its PATH")
        return found
    path = Path(target).expanduser()
    if not path.exists():
        raise ConfigError(f"no such file; give a client ({', '.join(files)}) or a config PATH", path=str(path))
    return [path]


# ---------------------------------------------------------------------------- reading and writing JSON(C)


def _strip_comments(text: str) -> str:
    """JSON with // and /* */ comments and trailing commas (VS Code's format) → plain JSON."""
    out, i, in_string = [], 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1: i + 2])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            out.append(ch)
        i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def load(path: Path, *, force: bool = False) -> tuple[str, dict[str, Any]]:
    """(text, data). Comments are tolerated for reading; writing would lose them, so refuse unless forced."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read it ({exc.strerror})", path=str(path)) from None
    plain = _strip_comments(text)
    try:
        data = json.loads(plain) if plain.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON ({exc.msg} at column {exc.colno}); fix it or pass another PATH",
                          path=str(path), line=exc.lineno) from None
    if not isinstance(data, dict):
        raise ConfigError("the config must be a JSON object", path=str(path), line=1)
    if plain != text and not force:
        raise ConfigError("has comments, which rewriting would lose; remove them or pass --force", path=str(path))
    return text, data


def dump_like(data: dict[str, Any], original: str) -> str:
    """JSON text in the original file's indentation, with its trailing newline."""
    indent: int | str = 2
    for line in original.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and stripped != line:
            lead = line[: len(line) - len(stripped)]
            indent = "\t" if lead.startswith("\t") else len(lead)
            break
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return text + ("\n" if original.endswith("\n") or not original else "")


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def diff(path: Path, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), str(path), f"{path} (wrapped)"))


# ---------------------------------------------------------------------------- entries


def sections(data: dict[str, Any]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every servers table in the file: top level, and Claude Code's per-project tables."""
    found = [((key,), data[key]) for key in SECTION_KEYS if isinstance(data.get(key), dict)]
    projects = data.get("projects")
    if isinstance(projects, dict):
        for name, project in projects.items():
            if isinstance(project, dict) and isinstance(project.get("mcpServers"), dict):
                found.append((("projects", name, "mcpServers"), project["mcpServers"]))
    return found


def is_wrapped(entry: dict[str, Any]) -> bool:
    command = str(entry.get("command", ""))
    args = entry.get("args") or []
    if re.search(r"(^|[\\/])signoff(\.exe)?$", command):
        return True
    return Path(command).name.startswith("python") and args[:3] == ["-m", "signoff", "run"]


@dataclass
class Plan:
    """What wrapping or unwrapping one file does."""

    path: Path
    before: str
    after: str
    changed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


def server_name(name: str) -> str:
    return _NAME.sub("-", name).strip("-") or "server"


def wrap_entry(name: str, entry: dict[str, Any], options: list[str], signoff: str, client: str) -> dict[str, Any] | None:
    """The wrapped entry, or None when it cannot be wrapped (already wrapped, unknown shape)."""
    if is_wrapped(entry):
        return None
    safe = server_name(name)
    if entry.get("command"):
        args = ["run", "--name", safe, *options, "--", str(entry["command"]), *[str(a) for a in entry.get("args") or []]]
        out: dict[str, Any] = {}
        for key, value in entry.items():
            out[key] = signoff if key == "command" else args if key == "args" else value
            if key == "command" and "args" not in entry:
                out["args"] = args
        return out
    url = entry.get("url") or entry.get("serverUrl")
    if not url:
        return None
    config = paths.home() / "wrapped" / f"{client}-{safe}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    kind = str(entry.get("type") or entry.get("transport") or "")
    server: dict[str, Any] = {"url": url}
    if entry.get("headers"):
        server["headers"] = entry["headers"]
    if kind in ("sse", "http", "streamable-http"):
        server["type"] = kind
    import yaml

    config.write_text(yaml.safe_dump({"servers": {safe: server}}, sort_keys=False), encoding="utf-8")
    wrapped: dict[str, Any] = {"type": "stdio"} if "type" in entry else {}
    wrapped.update(command=signoff, args=["run", "--config", str(config), *options])
    return wrapped


def _record_path(path: Path) -> Path:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return paths.home() / "wrap" / f"{digest}.json"


def _client_for(path: Path) -> str:
    for client, candidates in client_files().items():
        if path.resolve() in [c.resolve() for c in candidates]:
            return client
    return server_name(path.stem)


def plan_wrap(path: Path, *, options: list[str], signoff: str = "signoff", force: bool = False) -> Plan:
    before, data = load(path, force=force)
    plan = Plan(path, before, before)
    client = _client_for(path)
    originals: dict[str, dict[str, Any]] = {}
    for where, table in sections(data):
        for name, entry in list(table.items()):
            if not isinstance(entry, dict):
                continue
            wrapped = wrap_entry(name, entry, options, signoff, client)
            label = "/".join((*where, name))
            if wrapped is None:
                plan.skipped.append(f"{label}: {'already wrapped' if is_wrapped(entry) else 'no command or url'}")
                continue
            originals[label] = {"original": entry, "wrapped": wrapped}
            table[name] = wrapped
            plan.changed.append(label)
    if plan.changed:
        plan.after = dump_like(data, before)
        previous = _load_record(path)
        entries = {**(previous or {}).get("entries", {}), **originals}
        original_text = (previous or {}).get("original_text", before)
        plan.record = {"path": str(path.resolve()), "entries": entries, "original_text": original_text,
                       "wrapped_sha": hashlib.sha256(plan.after.encode()).hexdigest()}
    return plan


def _load_record(path: Path) -> dict[str, Any] | None:
    record = _record_path(path)
    return json.loads(record.read_text(encoding="utf-8")) if record.exists() else None


def apply_wrap(plan: Plan) -> None:
    if not plan.changed:
        return
    backup = plan.path.with_name(plan.path.name + ".signoff-backup")
    if not backup.exists():
        backup.write_text(plan.before, encoding="utf-8")
    record = _record_path(plan.path)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(plan.record, indent=1, ensure_ascii=False), encoding="utf-8")
    write_atomic(plan.path, plan.after)


def plan_unwrap(path: Path, *, force: bool = False) -> Plan:
    before, data = load(path, force=force)
    plan = Plan(path, before, before)
    record = _load_record(path)
    if record is None:
        plan.skipped.append("signoff has no record of wrapping this file")
        return plan
    if hashlib.sha256(before.encode()).hexdigest() == record.get("wrapped_sha"):
        plan.after = record["original_text"]  # untouched since: the exact original bytes
        plan.changed = list(record["entries"])
        return plan
    for where, table in sections(data):
        for name, entry in list(table.items()):
            label = "/".join((*where, name))
            saved = record["entries"].get(label)
            if saved is None:
                continue
            if entry == saved["wrapped"]:
                table[name] = saved["original"]
                plan.changed.append(label)
            else:
                plan.skipped.append(f"{label}: changed since it was wrapped; left as it is")
    if plan.changed:
        plan.after = dump_like(data, before)
    return plan


def apply_unwrap(plan: Plan) -> None:
    if not plan.changed:
        return
    write_atomic(plan.path, plan.after)
    _record_path(plan.path).unlink(missing_ok=True)
