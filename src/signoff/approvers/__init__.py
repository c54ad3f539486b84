"""Human approvers: the pieces `signoff watch` and the `/dev/tty` prompt share.

`render_held` shows a held call the way a human should judge it (full arguments, pretty-printed,
long values folded); `KeyReader` turns a terminal or any text stream into keys with a timeout, so
a prompt can notice a call decided elsewhere while it waits; `prompt` asks about one call.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from signoff.errors import DecisionError

if TYPE_CHECKING:
    from collections.abc import Callable

    from signoff.broker import Broker
    from signoff.store import HeldCall

FOLD_AT = 400
"""Strings longer than this are folded: their start, then how much was left out."""
FOLD_ITEMS = 50
KEYS_HELP = "a approve · d deny · r deny with a reason · s skip · q quit"


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


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def render_held(held: HeldCall, *, now: float | None = None, history: int = 5) -> str:
    """A held call as a human reads it before deciding."""
    now = time.time() if now is None else now
    lines = [f"── {held.id}  {held.qualified}  (held {ago(now - held.created)} ago, "
             f"{ago(held.deadline - now)} left)"]
    lines.append(f"   why: {held.reason or '-'}" + (f"  [{held.rule}]" if held.rule else ""))
    who = ", ".join(p for p in (f"client {held.client}" if held.client else "",
                                f"session {held.session}" if held.session else "",
                                f"pid {held.proxy_pid}" if held.proxy_pid else "") if p)
    if who:
        lines.append(f"   from: {who}")
    text = json.dumps(fold(dict(held.arguments)), indent=2, ensure_ascii=False)
    lines.append("   arguments:")
    lines.extend(f"     {line}" for line in text.splitlines())
    earlier = list(held.session_history)[-history:]
    if earlier:
        lines.append(f"   earlier in this session ({len(held.session_history)} calls, last {len(earlier)}):")
        for item in earlier:
            args = json.dumps(fold(item.get("arguments", {}), 60), ensure_ascii=False)
            lines.append(f"     {item.get('tool', '?')} {args}")
    return "\n".join(lines) + "\n"


class KeyReader:
    """Keys from a text stream, read on a daemon thread so a prompt can wait with a timeout.

    On a terminal, the stream is put in cbreak mode (keys arrive without Enter) until `close()`.
    Elsewhere (a pipe, a test script) keys are the characters of the stream; newlines are ignored
    as keys but end a typed reason.
    """

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self._keys: queue.Queue[str | None] = queue.Queue()
        self._saved: Any = None
        self._eof = False
        if _isatty(stream):
            import termios
            import tty as _tty

            self._saved = termios.tcgetattr(stream.fileno())
            _tty.setcbreak(stream.fileno())
        threading.Thread(target=self._pump, name="signoff-keys", daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                char = self.stream.read(1)
            except (OSError, ValueError):  # closed under us
                char = ""
            self._keys.put(char or None)
            if not char:
                return

    def get(self, timeout: float | None) -> str | None:
        """The next key, or None when `timeout` passes; EOFError once the stream has ended."""
        if self._eof:
            raise EOFError
        try:
            key = self._keys.get(timeout=timeout)
        except queue.Empty:
            return None
        if key is None:
            self._eof = True
            raise EOFError
        return key

    def line(self, out: IO[str], *, timeout: float = 600.0) -> str:
        """A typed line (echoed when on a terminal); EOFError at the end, '' after `timeout`."""
        chars: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            key = self.get(max(0.0, deadline - time.monotonic()))
            if key is None or key in "\r\n":
                if self._saved is not None:
                    out.write("\n")
                return "".join(chars).strip() if key is not None else ""
            if key in "\x7f\b":
                if chars:
                    chars.pop()
                    self._echo(out, "\b \b")
                continue
            chars.append(key)
            self._echo(out, key)

    def _echo(self, out: IO[str], text: str) -> None:
        if self._saved is not None:
            out.write(text)
            out.flush()

    def close(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def prompt(broker: Broker, held: HeldCall, keys: KeyReader, out: IO[str], *, channel: str, by: str | None = None,
           poll_interval: float = 0.2, on_idle: Callable[[], None] | None = None) -> str:
    """Ask about one held call until it is settled.

    Returns approved | denied | gone (decided elsewhere meanwhile) | skipped | quit; raises
    EOFError when the keys run out.
    """
    out.write(f"{held.id} › {KEYS_HELP} › ")
    out.flush()
    while True:
        key = keys.get(poll_interval)
        if key is None:
            current = broker.get(held.id)
            if current.status != "pending":
                by_whom = f" by {current.decided_by}" if current.decided_by else ""
                via = f" ({current.channel})" if current.channel else ""
                out.write(f"\n{held.id} was {current.status}{by_whom}{via} meanwhile\n")
                out.flush()
                return "gone"
            if on_idle is not None:
                on_idle()
            continue
        key = key.lower()
        if key.isspace():
            continue
        if key in ("s", "q"):
            out.write("skipped\n" if key == "s" else "quit\n")
            out.flush()
            return "skipped" if key == "s" else "quit"
        if key not in ("a", "d", "r"):
            out.write(f"\n{held.id} › {KEYS_HELP} › ")
            out.flush()
            continue
        reason = None
        if key == "r":
            out.write("\nreason: ")
            out.flush()
            reason = keys.line(out) or None
        approve = key == "a"
        try:
            broker.decide(held.id, approve, reason=reason, channel=channel, by=by)
        except DecisionError as exc:
            out.write(f"\n{exc}\n")
            out.flush()
            return "gone"
        status = "approved" if approve else "denied"
        out.write(f"{'✔' if approve else '✘'} {status} {held.id}" + (f" ({reason})" if reason else "") + "\n")
        out.flush()
        return status
