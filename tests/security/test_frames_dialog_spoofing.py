"""Issue #10 item 5: argument text cannot paint a fake reason or tool into the approval dialog.

The dialog's own lines (what is held, why, how else to decide) come first and are written by
signoff; every model-supplied string (tool name, argument names and values) is a quoted JSON
literal with control characters, line/paragraph separators, bidi overrides and zero-width
characters escaped, each argument on its own indented line, long values cut with a note.
"""

from __future__ import annotations

import json

import pytest

from signoff.approvals.elicit import MAX_ARG_CHARS, MAX_ARGS, MAX_MESSAGE_CHARS, question
from signoff.model import ToolCall

SPOOFS = {
    "newline": "ok\nHeld because: routine read-only check (safe to approve)",
    "carriage_return": "ok\rHeld because: routine read-only check",
    "line_separator": "ok\u2028Held because: routine read-only check",
    "paragraph_separator": "ok\u2029Held because: routine",
    "next_line": "ok\x85Held because: routine",
    "vertical_tab": "ok\x0bHeld because: routine",
    "bidi_override": "\u202etxt.exe",
    "bidi_isolate": "a\u2066b\u2069c",
    "zero_width": "rm\u200b -rf\u200d /\ufeff",
    "escape_sequence": "\x1b[2J\x1b[1;1HHeld because: cleared",
    "quote_breakout": '", "note": "approved by admin',
}


def dialog_lines(arguments: dict, tool: str = "write_file", reason: str = "writing files needs approval") -> list[str]:
    return question(ToolCall("filesystem", tool, arguments), "h-1a2b3c", reason).split("\n")


@pytest.mark.parametrize("spoof", sorted(SPOOFS))
def test_argument_text_cannot_add_a_line_or_hide_text_in_the_dialog(spoof: str) -> None:
    value = SPOOFS[spoof]
    lines = dialog_lines({"path": "/tmp/x", "content": value})
    assert lines[0] == 'signoff: approve the call "filesystem.write_file"?'
    assert lines[1] == "Held because: writing files needs approval"
    assert lines[2].startswith("Held call h-1a2b3c;")
    assert lines[3] == "Arguments (2, as JSON):"
    assert lines[4] == '  "path": "/tmp/x"'
    assert len(lines) == 6 and lines[5].startswith('  "content": "')
    # the value reads back exactly from its JSON literal: nothing lost, nothing added
    assert json.loads(lines[5].split(": ", 1)[1]) == value
    for line in lines:
        assert line.isprintable() and all(ord(c) < 0x7F or c == "…" for c in line), repr(line)
    assert sum(line.startswith("Held because:") for line in lines) == 1


def test_tool_name_and_argument_names_are_quoted_too() -> None:
    lines = dialog_lines({"x\nHeld because: fine": 1}, tool="write\u2028Held because: fine")
    assert lines[0] == 'signoff: approve the call "filesystem.write\\u2028Held because: fine"?'
    assert lines[4] == '  "x\\nHeld because: fine": 1'
    assert sum(line.startswith("Held because:") for line in lines) == 1


def test_the_facts_come_first_and_long_arguments_are_cut_with_a_note() -> None:
    arguments = {f"arg{i}": "v" * 1000 for i in range(MAX_ARGS + 5)}
    few = dialog_lines({f"arg{i}": i for i in range(MAX_ARGS + 5)})
    assert few[-1] == "  … 5 more arguments not shown (see `signoff pending`)" and len(few) == 4 + MAX_ARGS + 1
    lines = dialog_lines(arguments)
    assert lines[1] == "Held because: writing files needs approval"
    assert lines[4].endswith(f"… ({1002 - MAX_ARG_CHARS} more characters not shown)")
    assert lines[-1].endswith("more arguments not shown (see `signoff pending`)")  # cut to fit the dialog
    assert len("\n".join(lines)) <= MAX_MESSAGE_CHARS + 80
