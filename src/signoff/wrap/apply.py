"""`signoff wrap` / `unwrap`: put every server of an AI client's MCP config behind signoff, and back.

A stdio entry `{"command": C, "args": A, …}` becomes `{"command": "signoff", "args": ["run",
"--name", NAME, …, "--", C, *A], …}` with every other key kept in place; an HTTP entry is moved
into a small generated signoff.yaml that `signoff run --config` serves over stdio.

The file is edited in place, not re-serialized: only the text of each wrapped entry is replaced,
so the rest of the file (comments, formatting, keys the client adds while we are not looking)
stays byte for byte, and the diff shows only what changed. Clients reject unknown keys, so
nothing is added to the entries: the original text of each entry is recorded under
SIGNOFF_HOME/wrap/, and unwrapping puts that text back — byte-identical when nobody edited the
file, entry by entry when they did. A backup is written next to the file before the first change.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signoff import paths
from signoff.errors import ConfigError
from signoff.wrap.clients import client_for
from signoff.wrap.text import blank, load, render_like, splice, write_atomic

# Where servers live: Claude/Cursor/Windsurf, VS Code mcp.json, VS Code settings.json (+ Claude Code projects).
SECTIONS: tuple[tuple[str, ...], ...] = (("mcpServers",), ("servers",), ("mcp", "servers"))
URL_KEYS = ("url", "serverUrl")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


# ---------------------------------------------------------------------------- entries


def sections(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """Key paths of every servers table in the file: the known ones, and Claude Code's per-project ones."""
    found = [keys for keys in SECTIONS if isinstance(_get(data, keys), dict)]
    projects = data.get("projects")
    if isinstance(projects, dict):
        found += [
            ("projects", name, "mcpServers")
            for name, project in projects.items()
            if isinstance(project, dict) and isinstance(project.get("mcpServers"), dict)
        ]
    return found


def _get(data: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def label(section: tuple[str, ...], name: str) -> str:
    return f"{name} (project {section[1]})" if section[0] == "projects" else name


def server_name(name: str) -> str:
    """An entry's key as a signoff server name (policies match `server.tool`)."""
    return _UNSAFE_NAME.sub("-", name).strip("-") or "server"


def is_wrapped(entry: dict[str, Any]) -> bool:
    """Already runs through signoff: `signoff …`, `/path/to/signoff …` or `python -m signoff run …`."""
    command = str(entry.get("command", ""))
    args = entry.get("args") or []
    if re.search(r"(^|[\\/])signoff(\.exe)?$", command):
        return True
    return bool(re.match(r"python[0-9.]*(\.exe)?$", Path(command).name)) and args[:3] == ["-m", "signoff", "run"]


@dataclass
class Plan:
    """What wrapping or unwrapping one file does; `apply` carries it out."""

    path: Path
    before: str
    after: str
    changed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None  # what to store under SIGNOFF_HOME/wrap (None: remove it)
    generated: dict[str, str] = field(default_factory=dict)  # signoff.yaml files to write (HTTP entries)
    stale: list[str] = field(default_factory=list)  # generated files no longer needed
    forget: bool = False  # nothing of this file is left to unwrap: drop its record


def _wrap_stdio(name: str, entry: dict[str, Any], options: list[str], signoff: list[str]) -> dict[str, Any]:
    args = [
        *signoff[1:],
        "run",
        "--name",
        server_name(name),
        *options,
        "--",
        str(entry["command"]),
        *[str(a) for a in entry.get("args") or []],
    ]
    out: dict[str, Any] = {}
    for key, value in entry.items():
        out[key] = signoff[0] if key == "command" else args if key == "args" else value
        if key == "command" and "args" not in entry:
            out["args"] = args
    return out


def _http_config(name: str, entry: dict[str, Any]) -> str:
    """A signoff.yaml serving this one HTTP server."""
    import yaml

    server: dict[str, Any] = {"url": entry.get("url") or entry.get("serverUrl")}
    if entry.get("headers"):
        server["headers"] = entry["headers"]
    kind = str(entry.get("type") or entry.get("transport") or "")
    if kind in ("sse", "http", "streamable-http"):
        server["type"] = kind
    return yaml.safe_dump({"servers": {server_name(name): server}}, sort_keys=False, allow_unicode=True)


def _wrap_http(entry: dict[str, Any], config: Path, options: list[str], signoff: list[str]) -> dict[str, Any]:
    """The entry with its URL keys replaced by a stdio `signoff run --config` (other keys kept in place)."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key in URL_KEYS and "command" not in out:
            out["command"] = signoff[0]
            out["args"] = [*signoff[1:], "run", "--config", str(config), *options]
        elif key == "type":
            out[key] = "stdio"
        elif key not in (*URL_KEYS, "headers", "transport"):
            out[key] = value
    return out


def _record_path(path: Path) -> Path:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return paths.home() / "wrap" / f"{digest}.json"


def load_record(path: Path) -> dict[str, Any] | None:
    record = _record_path(path)
    return json.loads(record.read_text(encoding="utf-8")) if record.exists() else None


def records() -> list[dict[str, Any]]:
    """Every file signoff has wrapped and not yet fully unwrapped."""
    folder = paths.home() / "wrap"
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def _wrap_one(
    path: Path, section: tuple[str, ...], name: str, entry: dict[str, Any], options: list[str], signoff: list[str]
) -> tuple[dict[str, Any], Path | None, str] | str:
    """(wrapped entry, generated config or None, its text), or why this entry is left as it is."""
    if entry.get("command"):
        return _wrap_stdio(name, entry, options, signoff), None, ""
    if not any(entry.get(k) for k in URL_KEYS):
        return "neither a command nor a url; left as is"
    if "${" in json.dumps([entry.get(k) for k in (*URL_KEYS, "headers")]):
        return "its URL or headers use ${…} variables that only the client expands; left as is"
    digest = hashlib.sha256(f"{path.resolve()}\0{section}\0{name}".encode()).hexdigest()[:8]
    config = paths.home() / "wrapped" / f"{client_for(path)}-{server_name(name)}-{digest}.yaml"
    return _wrap_http(entry, config, options, signoff), config, _http_config(name, entry)


def plan_wrap(path: Path, *, options: list[str], signoff: list[str] | None = None, force: bool = False) -> Plan:
    """Wrap every stdio and HTTP entry not yet through signoff; skip (and say why) the rest.

    An entry signoff wrapped before, untouched since, is wrapped again from its original with
    these options (so `wrap --absolute` or another `--policy` updates it); same options, same bytes.
    """
    signoff = signoff or ["signoff"]
    source = load(path)
    plan = Plan(path, source.text, source.text)
    record = load_record(path) or {"path": str(path.resolve()), "entries": {}}
    replacements = []
    for section in sections(source.data):
        table_start, _ = source.span(section)  # type: ignore[misc]
        for name, (start, end) in source.members(table_start).items():
            entry, where, key = _get(source.data, section)[name], label(section, name), json.dumps([*section, name])
            if not isinstance(entry, dict):
                continue
            saved = record["entries"].get(key)
            original_text = source.text[start:end]
            current = entry
            if is_wrapped(entry):
                if not saved or entry != saved["wrapped"]:
                    plan.skipped.append(f"{where}: already through signoff")
                    continue
                original_text, entry = saved["text"], json.loads(blank(saved["text"]))
            outcome = _wrap_one(path, section, name, entry, options, signoff)
            if isinstance(outcome, str):
                plan.skipped.append(f"{where}: {outcome}")
                continue
            wrapped, config, config_text = outcome
            if wrapped == current:
                plan.skipped.append(f"{where}: already through signoff")
                continue
            if source.has_comments(start, end) and not force:
                raise ConfigError(
                    f"server {name!r} has comments inside it, which wrapping would drop (unwrap brings them "
                    "back); remove them or pass --force",
                    path=str(path),
                    line=source.text.count("\n", 0, start) + 1,
                )
            if config:
                plan.generated[str(config)] = config_text
            replacements.append(((start, end), render_like(wrapped, source.text[start:end], source, start)))
            record["entries"][key] = {
                "section": list(section),
                "name": name,
                "text": original_text,
                "wrapped": wrapped,
                "generated": str(config) if config else None,
            }
            plan.changed.append(where)
    if plan.changed:
        plan.after = splice(source.text, replacements)
        plan.record = record
    return plan


def plan_unwrap(path: Path) -> Plan:
    """Put back each entry still as signoff wrote it; leave the ones edited since (and say so)."""
    source = load(path)
    plan = Plan(path, source.text, source.text)
    record = load_record(path)
    if record is None:
        plan.skipped.append("signoff has no record of wrapping this file")
        return plan
    keep: dict[str, Any] = {}
    replacements = []
    for key, saved in record["entries"].items():
        section, name = tuple(saved["section"]), saved["name"]
        where, span = label(section, name), source.span((*section, name))
        current = _get(source.data, (*section, name))
        if span is None:
            plan.skipped.append(f"{where}: no longer in the file")
            plan.stale += [saved["generated"]] if saved.get("generated") else []
        elif current != saved["wrapped"]:
            plan.skipped.append(f"{where}: changed since it was wrapped; left as it is")
            if isinstance(current, dict) and is_wrapped(current):
                keep[key] = saved
        else:
            replacements.append((span, saved["text"]))
            plan.changed.append(where)
            if saved.get("generated"):
                plan.stale.append(saved["generated"])
    plan.after = splice(source.text, replacements)
    plan.record = {**record, "entries": keep} if keep else None
    plan.forget = not keep
    return plan


def _backup(path: Path) -> Path:
    return path.with_name(path.name + ".signoff-backup")


def apply(plan: Plan) -> None:
    """Backup first (once), then generated configs and the record, then the file itself, atomically."""
    if not plan.changed:
        if plan.forget:
            _record_path(plan.path).unlink(missing_ok=True)
            for name in plan.stale:
                Path(name).unlink(missing_ok=True)
        return
    if plan.path.read_bytes().decode("utf-8") != plan.before:
        raise ConfigError(
            "changed while signoff was rewriting it (is the client writing it?); run the command again", path=str(plan.path)
        )
    mode = plan.path.resolve().stat().st_mode & 0o777
    backup = _backup(plan.path)
    if plan.record and not backup.exists():
        write_atomic(backup, plan.before, mode)
    for name, text in plan.generated.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(name), text, 0o600)  # headers may carry tokens
    record = _record_path(plan.path)
    if plan.record:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(record, json.dumps(plan.record, indent=1, ensure_ascii=False), 0o600)
    write_atomic(plan.path, plan.after, mode)
    if plan.record is None:
        record.unlink(missing_ok=True)
        for name in plan.stale:
            Path(name).unlink(missing_ok=True)
        if backup.exists() and backup.read_bytes() == plan.after.encode("utf-8"):
            backup.unlink()  # fully restored: a stale backup would only mislead later
