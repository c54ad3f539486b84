"""Text from the model, upstream servers and clients, made safe to show -- chosen by name.

Tool names, server and client names, URL hosts, reasons and arguments are untrusted: an ESC/CSI/
OSC sequence (`\\x1b]52;…` writes the clipboard, `\\x1b[2K\\r` paints a fake line), a C1 control
(`\\x9b` is CSI on some terminals), DEL, a bidi override or a zero-width character in them must
never reach a reader raw. There are three ways, one per kind of reader; pick one by name:

- terminals: `clean` (one field, newlines included, every such character shown as an escape, so
  a value cannot start a line of its own) or `json_text` / `escape_json` (JSON stays valid JSON,
  with the same characters as `\\uXXXX` escapes);
- one-line channels (notifications, denial reasons, headlines): `one_line` blanks them, collapses
  whitespace and cuts, since a notification cannot show an escape and must not be split;
- the approval page: `for_page` only folds whitespace and cuts; the characters stay, and the page
  (app.js `visible`) shows them as visible escapes, so a reviewer sees that they are there.

Shortening is here too, so every cut says the same thing: `shorten` (a string, with "…") and
`fold` (a JSON-like value: long strings and lists shortened, saying by how much).
"""

from __future__ import annotations

import json
import logging
import re
from typing import IO, Any


def _unsafe(char: str) -> bool:
    # not printable = Cc (C0, DEL, C1), Cf (bidi overrides, zero-width, BOM), Zl/Zp, Zs except
    # the plain space, surrogates, private use and unassigned code points
    return not char.isprintable() and char != " "


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(value: Any) -> str:
    """`value` as one line of text with every control or invisible character shown as an escape."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the fast path: nearly every value
        return text
    return "".join(_escape(c) if _unsafe(c) else c for c in text)


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|\\s\\s")


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, the last one "…" when anything was cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def one_line(text: str, limit: int = 400) -> str:
    """Model-supplied text made safe to show on one line: no newlines, control or bidi characters."""
    if len(text) <= limit and not _UNSAFE.search(text):
        return text
    return shorten(" ".join(_UNSAFE.sub(" ", text).split()), limit)


def for_page(text: str, limit: int) -> str:
    """Text for the approval page: whitespace folded and cut; control and bidi characters are kept
    for the page to show as visible escapes (`one_line` would silently blank them)."""
    return shorten(" ".join(text.split()), limit)


FOLD_AT = 400
"""`fold`: strings longer than this are folded: their start, then how much was left out."""
FOLD_ITEMS = 50


def fold(value: Any, limit: int = FOLD_AT) -> Any:
    """A copy of `value` with long strings and long lists shortened, saying by how much."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… (+{len(value) - limit} more characters)"
    if isinstance(value, dict):
        return {k: fold(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [fold(v, limit) for v in value[:FOLD_ITEMS]]
        if len(value) > FOLD_ITEMS:
            items.append(f"… (+{len(value) - FOLD_ITEMS} more items)")
        return items
    return value


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a surrogate pair, as JSON spells characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(value: Any, **options: Any) -> str:
    """`json.dumps` (readable Unicode kept) with control and invisible characters as \\u escapes.

    The output is valid JSON meaning the same value; such characters only occur inside strings,
    where a \\u escape is legal. Whitespace that `indent` adds is left alone.
    """
    return escape_json(json.dumps(value, ensure_ascii=False, **options))


def escape_json(text: str) -> str:
    """Already serialised JSON (or JSON lines) with control and invisible characters as \\u escapes."""
    if text.isprintable():
        return text
    return "".join(_json_escape(c) if _unsafe(c) and c != "\n" else c for c in text)


class SafeJsonLines:
    """A text stream that escapes what `escape_json` does on its way to `stream` (JSON lines export)."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(escape_json(text))


class SafeFormatter(logging.Formatter):
    """Log lines with the message escaped: a tool name logged by a proxy whose stderr is a
    terminal cannot paint on it, and a newline in it cannot forge a second log line.
    (Tracebacks, which signoff writes itself, keep their lines.)"""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return clean(super().formatMessage(record))
