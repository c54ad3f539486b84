"""JSON and JSON-with-comments config files edited as text, so what is not rewritten stays byte for byte.

`load` keeps the file's text next to a same-length copy with comments and trailing commas
blanked out: offsets agree, so a value found in the plain copy can be replaced in the real text,
and parse errors point at the file's own lines.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from signoff.errors import ConfigError

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")
_LEAD = re.compile(r"[ \t]*")


def _skip(text: str, pos: int = 0) -> int:
    """Past the JSON whitespace at `pos` (`_WS` matches everywhere, possibly empty)."""
    found = _WS.match(text, pos)
    return found.end() if found else pos


def _lead(text: str, pos: int = 0) -> str:
    """The indentation at `pos`."""
    found = _LEAD.match(text, pos)
    return found.group() if found else ""


_FIRST_INDENT = re.compile(r"\n([ \t]+)[^ \t\r\n]")
_COMMENTS = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*[\s\S]*?(?:\*/|\Z)')
_TRAILING_COMMA = re.compile(r'"(?:[^"\\]|\\.)*"|,(?=[ \t\r\n]*[}\]])')


def blank(text: str) -> str:
    """Comments and trailing commas become spaces (newlines kept): the same offsets and lines, plain JSON."""
    text = _COMMENTS.sub(lambda m: m[0] if m[0][0] == '"' else re.sub(r"[^\n]", " ", m[0]), text)
    text = _TRAILING_COMMA.sub(lambda m: " " if m[0] == "," else m[0], text)
    return " " + text[1:] if text.startswith("\ufeff") else text


@dataclass
class Source:
    """A config file's text, a blanked copy whose offsets agree with it, and its data."""

    path: Path
    text: str
    plain: str
    data: dict[str, Any]
    _members: dict[int, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def members(self, start: int) -> dict[str, tuple[int, int]]:
        """Span of each member's value in the object that starts at `start`."""
        if start not in self._members:
            self._members[start] = _members(self.plain, start)
        return self._members[start]

    def span(self, keys: tuple[str, ...]) -> tuple[int, int] | None:
        """Where the value at this key path is in the text (None if absent)."""
        start = _skip(self.plain)
        end = len(self.plain.rstrip())
        for key in keys:
            if self.plain[start] != "{" or key not in self.members(start):
                return None
            start, end = self.members(start)[key]
        return start, end

    def has_comments(self, start: int, end: int) -> bool:
        """Comments in this value (trailing commas do not count: dropping them loses nothing)."""
        return any(m[0][0] != '"' for m in _COMMENTS.finditer(self.text, start, end))

    @cached_property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"

    @cached_property
    def indent_unit(self) -> str:
        """The file's indentation step (2 or 4 spaces, a tab), from its first indented line."""
        first = _FIRST_INDENT.search(self.plain)
        return first[1] if first else "  "


def _members(plain: str, start: int) -> dict[str, tuple[int, int]]:
    """Scan an object of valid JSON (`plain[start] == "{"`), keeping where each value is."""
    spans: dict[str, tuple[int, int]] = {}
    i = _skip(plain, start + 1)
    while plain[i] != "}":
        key, i = json.decoder.scanstring(plain, i + 1)  # type: ignore[attr-defined]  # public, missing from typeshed
        i = _skip(plain, _skip(plain, i) + 1)  # past the colon
        _, end = _DECODER.raw_decode(plain, i)
        spans[key] = (i, end)
        i = _skip(plain, end)
        if plain[i] == ",":
            i = _skip(plain, i + 1)
    return spans


def load(path: Path) -> Source:
    """Read a JSON (or JSON-with-comments) config; errors name the file and line and say what to do."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read it ({exc.strerror})", path=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text; fix it or pass another PATH", path=str(path)) from None
    plain = blank(text)
    try:
        data = json.loads(plain) if plain.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; fix it or pass another PATH", path=str(path)
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("the config must be a JSON object; fix it or pass another PATH", path=str(path), line=1)
    return Source(path, text, plain, data)


def render_like(value: dict[str, Any], old: str, source: Source, start: int) -> str:
    """`value` laid out like the entry text it replaces: one line if that was one line, else one key
    per line (arrays that were on one line stay on one line), indented as the file is."""
    if "\n" not in old:
        return json.dumps(value, ensure_ascii=False)
    nl = source.newline
    prefix = _lead(source.text, source.text.rfind("\n", 0, start) + 1)
    leads = [_lead(line) for line in old.splitlines()[1:] if line.strip()]
    unit = next((lead[len(prefix) :] for lead in leads if lead.startswith(prefix) and lead != prefix), None)
    unit = unit or source.indent_unit
    inner = prefix + unit
    old_members = source.members(start)
    lines = []
    for key, item in value.items():
        span = old_members.get(key)
        flat = not isinstance(item, (dict, list)) or not item or (span and "\n" not in source.text[span[0] : span[1]])
        body = json.dumps(item, ensure_ascii=False) if flat else json.dumps(item, ensure_ascii=False, indent=unit)
        lines.append(f"{inner}{json.dumps(key, ensure_ascii=False)}: {body.replace(chr(10), nl + inner)}")
    return "{" + nl + ("," + nl).join(lines) + nl + prefix + "}"


def splice(text: str, replacements: list[tuple[tuple[int, int], str]]) -> str:
    """Replace these (non-overlapping) spans of the text."""
    pieces, done = [], 0
    for (start, end), new in sorted(replacements):
        pieces += [text[done:start], new]
        done = end
    return "".join([*pieces, text[done:]])


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write through a temp file in the same directory (never a half-written config); follows symlinks."""
    path = path.resolve()
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def diff(path: Path, before: str, after: str) -> str:
    """A unified diff, for --dry-run."""
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"{path}", f"{path} (new)"))
