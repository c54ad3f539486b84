"""What a file write would change: a unified diff against the file as it is now.

The proxy computes it when it holds the call (it runs on the machine of a stdio upstream, so it
sees the same files), and the held row carries it to every channel. Reading is careful because
the path comes from the model: only a path the server itself could touch (inside the directories
given on its command line, when it names any; relative paths against its working directory),
never a credentials file, never through a final symlink (O_NOFOLLOW), never blocking on a FIFO or
a device (O_NONBLOCK, then fstat must say a regular file), at most 1 MiB of text. When the file
cannot be read the preview says why and shows no diff; a missing file is a new file (all added).
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_BYTES = 1 << 20
MAX_LINES = 200
"""Diff lines kept; the rest is counted in the note ("diff cut")."""
MAX_COMPARED = 20000
"""Longest file (in lines, either side) compared: difflib's time grows faster than the size."""


@dataclass(frozen=True)
class Places:
    """Where a server may touch files: its working directory and the directories named on its
    command line (resolved; empty when it names none, as for a shell server)."""

    cwd: str
    roots: tuple[str, ...] = ()


_PLACES: dict[str, Places] = {}


def know_server(name: str, command: Sequence[str], cwd: str | None = None) -> None:
    """Record where the wrapped server `name` runs and which directories its command line names."""
    base = os.path.abspath(cwd or os.getcwd())
    roots = []
    for arg in command[1:]:
        if not isinstance(arg, str) or not arg or arg.startswith("-") or "\0" in arg:
            continue
        candidate = os.path.join(base, os.path.expanduser(arg))
        if os.path.isdir(candidate):
            roots.append(os.path.realpath(candidate))
    _PLACES[name] = Places(base, tuple(roots))


def places_for(server: str) -> Places | None:
    """Where `server` may touch files; None for a server not started here (HTTP: its files are elsewhere)."""
    return _PLACES.get(server)


class Unread(Exception):
    """The current file is not read; the message says why in a few words."""


def resolve(path: Any, places: Places) -> str:
    """The real path the server would write, or Unread when signoff will not look at it."""
    from signoff.policy.understand.shell import SENSITIVE_PATHS

    if not isinstance(path, str) or not path.strip() or "\0" in path:
        raise Unread("the path is not text")
    expanded = os.path.expanduser(path.strip())
    real = os.path.realpath(os.path.join(places.cwd, expanded))
    if places.roots and not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in places.roots):
        raise Unread(f"outside the directories the server was given ({', '.join(places.roots)}): not read")
    if SENSITIVE_PATHS.search(real) or SENSITIVE_PATHS.search(path):
        raise Unread("it looks like a credentials file: not read")
    return real


def current_text(real: str) -> str | None:
    """The file's text now; None when it does not exist (a new file)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unread(f"cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unread("not a regular file: not read")
        if info.st_size > MAX_BYTES:
            raise Unread(f"larger than {MAX_BYTES // 1024} KiB: not read")
        data = os.read(fd, MAX_BYTES + 1)
    except OSError as exc:
        raise Unread(f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise Unread(f"larger than {MAX_BYTES // 1024} KiB: not read")
    if b"\0" in data:
        raise Unread("a binary file: no diff")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unread("not UTF-8 text: no diff") from None


def unified(old: str, new: str, label: str, *, new_file: bool = False) -> dict[str, Any]:
    """The preview of one change: diff text (cut at MAX_LINES), counts and a note."""
    if len(new) > MAX_BYTES or max(old.count("\n"), new.count("\n")) > MAX_COMPARED:
        return {
            "kind": "diff",
            "title": label,
            "text": "",
            "note": f"too large to compare (over {MAX_COMPARED} lines or {MAX_BYTES // 1024} KiB): no diff",
            "added": 0,
            "removed": 0,
            "new_file": new_file,
        }
    lines = list(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), "/dev/null" if new_file else f"a/{label}", f"b/{label}", n=3, lineterm=""
        )
    )[2:]  # the ---/+++ header says nothing new
    added = sum(1 for line in lines if line.startswith("+"))
    removed = sum(1 for line in lines if line.startswith("-"))
    note = ""
    if len(lines) > MAX_LINES:
        note = f"diff cut: {len(lines) - MAX_LINES} more lines not shown"
        lines = lines[:MAX_LINES]
    if not lines:
        note = "no change: the file already has this content"
    return {
        "kind": "diff",
        "title": "Changes" if lines else label,
        "text": "\n".join(lines),
        "note": note,
        "added": added,
        "removed": removed,
        "new_file": new_file,
    }


def apply_edits(text: str, edits: Sequence[Any]) -> tuple[str, str]:
    """server-filesystem's `edit_file`: each oldText replaced (first occurrence) by its newText."""
    for edit in edits:
        if not isinstance(edit, Mapping) or not isinstance(edit.get("oldText"), str) or not isinstance(edit.get("newText"), str):
            return text, "an edit is not {oldText, newText} text"
        old = edit["oldText"].replace("\r\n", "\n")
        if old not in text:
            return text, "an edit's oldText is not in the current file (the server will refuse it)"
        text = text.replace(old, edit["newText"].replace("\r\n", "\n"), 1)
    return text, ""


def edits_only(edits: Sequence[Any], label: str) -> dict[str, Any]:
    """The edits themselves as a diff (old text removed, new text added), when the file is not read."""
    old = "\n".join(str(e.get("oldText", "")) for e in edits if isinstance(e, Mapping))
    new = "\n".join(str(e.get("newText", "")) for e in edits if isinstance(e, Mapping))
    return unified(old, new, label)


def preview(server: str, path: Any, *, content: Any = None, edits: Any = None) -> dict[str, Any] | None:
    """The diff a write of `content` (or the `edits`) to `path` would make; None when there is
    nothing to show. Never raises: a file that cannot be read gives a note instead of a diff."""
    if content is None and not isinstance(edits, list):
        return None
    label = path if isinstance(path, str) else "?"
    places = places_for(server)
    if places is None:
        return None  # not a server started on this machine: the file it writes is not here
    try:
        real = resolve(path, places)
        old = current_text(real)
    except Unread as exc:
        if isinstance(edits, list):
            shown = edits_only(edits, label)
            return {**shown, "note": "; ".join(filter(None, (f"current file {exc}", shown["note"])))}
        return {
            "kind": "diff",
            "title": label,
            "text": "",
            "note": f"current file {exc}",
            "added": 0,
            "removed": 0,
            "new_file": False,
        }
    if isinstance(edits, list):
        if old is None:
            shown = edits_only(edits, label)
            return {**shown, "note": "the file does not exist (the server will refuse the edit)"}
        new, problem = apply_edits(old.replace("\r\n", "\n"), edits)
        if problem:
            shown = edits_only(edits, label)
            return {**shown, "note": problem}
        return unified(old.replace("\r\n", "\n"), new, label)
    if not isinstance(content, str):
        return None
    return unified(old or "", content, label, new_file=old is None)
