"""Human approvers: the pieces `signoff watch` and the `/dev/tty` prompt share.

`render_held` shows a held call the way a human should judge it (full arguments, pretty-printed,
long values folded, every untrusted character escaped by `termsafe`); `KeyReader` (single keys,
for `watch`) and `LineReader` (whole lines, for the tty prompt) wait with a timeout, so a prompt
can notice a call decided elsewhere while it waits; `prompt` asks about one call and names the
id its answer decided.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from signoff.durations import format_duration
from signoff.errors import CallGoneError, DecisionError
from signoff.termsafe import clean, fold, json_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from signoff.approvals.broker import Broker
    from signoff.approvals.store import HeldCall

KEYS_HELP = "a approve · d deny · r deny with a reason · s skip · q quit"


def ago(seconds: float) -> str:
    """How long, in whole seconds (a clock difference can be slightly negative)."""
    return format_duration(max(0, int(seconds)))


def render_held(held: HeldCall, *, now: float | None = None, history: int = 5, width: int = 120) -> str:
    """A held call as a human reads it before deciding (every untrusted field escaped)."""
    now = time.time() if now is None else now
    from signoff.approvals.present import for_held

    shown = for_held(held)  # what the call does, first (headline, facts, diff/SQL/body preview)
    lines = [f"── {held.id}  {clean(held.qualified)}  (held {ago(now - held.created)} ago, {ago(held.deadline - now)} left)"]
    lines.append(shown.as_text(width, arguments=False, reason=False, indent="   ").rstrip("\n"))
    lines.append(f"   why: {clean(held.reason or '-')}" + (f"  [{clean(held.rule)}]" if held.rule else ""))
    who = ", ".join(
        p
        for p in (
            clean(held.who),
            f"client {clean(held.client)}" if held.client else "",
            f"session {clean(held.session)}" if held.session else "",
            f"pid {held.proxy_pid}" if held.proxy_pid else "",
        )
        if p
    )
    if who:
        lines.append(f"   from: {who}")
    if not held.requirements.default:
        lines.append(f"   needs: {held.requirements.describe()}")
        lines.append(clean(f"   votes: {held.progress}"))
    text = json_text(fold(dict(shown.arguments)), indent=2)  # redacted, recipient/path/command before bodies
    lines.append("   arguments:")
    lines.extend(f"     {line}" for line in text.splitlines())
    earlier = list(held.session_history)[-history:]
    if earlier:
        lines.append(f"   earlier in this session ({len(held.session_history)} calls, last {len(earlier)}):")
        for item in earlier:
            args = json_text(fold(item.get("arguments", {}), 60))
            lines.append(f"     {clean(item.get('tool', '?'))} {args}")
    return "\n".join(lines) + "\n"


def decided_line(held: HeldCall, status: str, reason: str | None = None) -> str:
    """What a key press did, naming the call it decided: `✔ approved h-1a2b3c (fs.write_file)`."""
    mark = "✔" if status == "approved" else "✘"
    return f"{mark} {status} {held.id} ({clean(held.qualified)})" + (f": {clean(reason)}" if reason else "")


class KeyReader:
    """Keys from a text stream, read on a daemon thread so a prompt can wait with a timeout.

    `signoff watch` owns its terminal, so there the stream is put in cbreak mode (keys arrive
    without Enter) until `close()`. Elsewhere (a pipe, a test script) keys are the characters of
    the stream; newlines are ignored as keys but end a typed reason.
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

    def drain(self) -> None:
        """On a terminal, forget keys typed before now: they were not about the call about to be
        shown. (Piped input is a script written for the calls it expects, so it is kept.)"""
        if self._saved is None:
            return
        import termios

        termios.tcflush(self.stream.fileno(), termios.TCIFLUSH)
        while True:
            try:
                key = self._keys.get_nowait()
            except queue.Empty:
                return
            if key is None:
                self._keys.put(None)
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
            self._echo(out, clean(key))

    def _echo(self, out: IO[str], text: str) -> None:
        if self._saved is not None:
            out.write(text)
            out.flush()

    def close(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None


class LineReader:
    """Whole typed lines from a file descriptor (a terminal in canonical mode, or a pipe).

    The `--tty` prompt uses it: an answer is a word and Enter, never a single stray key, and
    nothing is read from the descriptor except while a prompt waits (select, then read).
    """

    def __init__(self, fd: int):
        self.fd = fd
        self._buffer = b""

    def drain(self) -> None:
        """Discard whatever is waiting to be read (typed before the question was shown)."""
        import select

        self._buffer = b""
        while select.select([self.fd], [], [], 0)[0]:
            if not self._read():
                return

    def _read(self) -> bytes | None:
        """What is there to read: b'' at the end, None when another reader of the terminal took it
        first (the descriptor is non-blocking then, so the prompt never hangs in read)."""
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return None

    def get(self, timeout: float | None) -> str | None:
        """The next typed line without its newline, None when `timeout` passes; EOFError at the end."""
        import select

        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = self._read()
            if chunk == b"":
                raise EOFError
            self._buffer += chunk or b""
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def line(self, out: IO[str], *, timeout: float = 600.0) -> str:
        """A typed line (the terminal echoes it); '' after `timeout`."""
        return (self.get(timeout) or "").strip()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


ANSWERS = {"a": "a", "approve": "a", "d": "d", "deny": "d", "r": "r", "s": "s", "skip": "s", "q": "q", "quit": "q"}


def prompt(
    broker: Broker,
    held: HeldCall,
    keys: KeyReader | LineReader,
    out: IO[str],
    *,
    channel: str,
    by: str | None = None,
    poll_interval: float = 0.2,
    on_idle: Callable[[], None] | None = None,
    keys_help: str = KEYS_HELP,
    on_answer: Callable[[], None] | None = None,
) -> str:
    """Ask about one held call (the one just shown above) until it is settled.

    `keys` gives single keys (watch) or whole lines (the tty prompt); either way the answer
    decides `held` and the line printed names its id. `on_answer` runs once the answer is
    known, before it takes effect (the tty prompt gives the terminal back there). Returns
    approved | denied | gone (decided elsewhere meanwhile) | skipped | quit; raises EOFError
    when the keys run out.
    """
    ask = f"{held.id} › {keys_help} › "
    out.write(ask)
    out.flush()
    while True:
        key = keys.get(poll_interval)
        if key is None:
            current = broker.get(held.id)
            if current.status != "pending":
                from signoff.approvals.store import GONE, gone_line

                if current.status in GONE:  # nobody waits for it any more (proxy died, client left)
                    out.write(f"\n{clean(gone_line(current))}\n")
                    out.flush()
                    return "gone"
                by_whom = f" by {clean(current.decided_by)}" if current.decided_by else ""
                via = f" ({clean(current.channel)})" if current.channel else ""
                out.write(f"\n{held.id} was {current.status}{by_whom}{via} meanwhile ({clean(held.qualified)})\n")
                out.flush()
                return "gone"
            if on_idle is not None:
                on_idle()
            continue
        word = key.strip().lower()
        if not word:
            continue
        answer = ANSWERS.get(word)
        if answer in ("s", "q"):
            out.write(f"{'skipped' if answer == 's' else 'quit'} ({held.id})\n")
            out.flush()
            return "skipped" if answer == "s" else "quit"
        if answer is None:
            out.write(f"\nnot understood: {clean(word[:40])}\n{ask}")
            out.flush()
            continue
        reason = None
        if answer == "r":
            out.write(f"\n{held.id} deny, reason: ")
            out.flush()
            reason = keys.line(out) or None
        approve = answer == "a"
        if on_answer is not None:
            on_answer()
        try:
            broker.decide(held.id, approve, reason=reason, channel=channel, by=by)
        except CallGoneError:
            from signoff.approvals.store import gone_line

            out.write(f"\n{clean(gone_line(broker.get(held.id)))}\n")
            out.flush()
            return "gone"
        except DecisionError as exc:
            out.write(f"\n{clean(exc)}\n")
            out.flush()
            return "gone"
        status = "approved" if approve else "denied"
        out.write("\n" + decided_line(held, status, reason) + "\n")
        out.flush()
        return status
