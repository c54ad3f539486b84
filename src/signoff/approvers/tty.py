"""Approval on the controlling terminal (`signoff run --tty`): prompts on /dev/tty, never stdout.

A stdio proxy's stdout is the MCP channel, so the prompt opens `/dev/tty` itself. The terminal
belongs to the person and their AI client, so signoff touches it only while a call is asked
about: it opens /dev/tty, saves its modes, switches to line input with echo, discards anything
typed before the question (keys meant for the client must not decide a call), and reads a whole
answer (`a` then Enter; a single stray key decides nothing). Afterwards — also on an exception,
SIGTERM/SIGHUP or exit — the saved modes are put back exactly. Between questions nothing reads
the terminal, and proxies sharing a terminal take turns (one question on it at a time). Prompts
run on a daemon thread fed by the broker's listeners; a call decided elsewhere meanwhile is
dropped from the prompt. Without a terminal (an MCP Python SDK client starts servers in a new
session, without one) it says so once and the other channels decide.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import queue
import signal
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from signoff.approvals.broker import Broker
from signoff.approvals.store import HeldCall
from signoff.approvers.console import LineReader, prompt, render_held
from signoff.errors import SignoffError

log = logging.getLogger("signoff.tty")
TTY_PATH = "/dev/tty"
TTY_HELP = "type a (approve), d (deny), r (deny with a reason) or s (skip), then Enter"
NO_TTY = (
    "no terminal for --tty approvals ({path}: {why}): the client started this server without a "
    "controlling terminal (the MCP Python SDK does). Held calls are not asked here: approve them with `signoff watch`, "
    "`signoff approve ID` or the page (`signoff ui`)"
)

_saved_modes: dict[int, list[Any]] = {}
"""Terminal modes to put back, by descriptor, while a prompt has changed them."""


def restore(fd: int) -> None:
    """Put the terminal's saved modes back now (once; later calls do nothing)."""
    saved = _saved_modes.pop(fd, None)
    if saved is not None:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        except (termios.error, OSError):
            pass  # the terminal is gone: nothing left to restore


def _restore_all() -> None:
    for fd in list(_saved_modes):
        restore(fd)


def _restore_on_signals() -> None:
    """Put the terminal back before SIGTERM/SIGHUP end the process (chaining any handler)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(signum)
        if previous is signal.SIG_IGN or getattr(previous, "_signoff_tty", False):
            continue

        def handler(num: int, frame: Any, previous: Any = previous) -> None:
            _restore_all()
            if callable(previous):
                previous(num, frame)
                return
            signal.signal(num, signal.SIG_DFL)
            os.kill(os.getpid(), num)

        handler._signoff_tty = True  # type: ignore[attr-defined]
        try:
            signal.signal(signum, handler)
        except ValueError:  # not the main thread: exit and exceptions still restore
            return


atexit.register(_restore_all)


def _terminal_id(path: str) -> str:
    """Which terminal `path` is: /dev/tty names this process's controlling one (tty_nr on Linux)."""
    if path != TTY_PATH:
        return str(os.stat(path).st_rdev)
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[4]
    except (OSError, IndexError):
        return "tty"


@contextmanager
def terminal_turn(path: str, still_wanted: Callable[[], bool], poll_interval: float) -> Iterator[bool]:
    """Wait for this terminal's turn: one prompt at a time across every proxy on it.

    An AI client starts one proxy per server, all on the same terminal; two questions at once
    would let an answer typed under one reach the other. An flock per terminal (released by the
    kernel if a proxy dies) orders them; a proxy in the terminal's background waits for the
    foreground. Yields False if the call stopped being wanted first.
    """
    from signoff import paths

    lock = paths.home() / f"tty-{_terminal_id(path)}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        said = False
        while not (_in_foreground(path) and _try_lock(fd)):
            if not said and not _in_foreground(path):
                log.info(
                    "not asking on the terminal yet: this proxy is in its background (a question there would "
                    "stop it); waiting for the foreground, the other channels can decide meanwhile"
                )
                said = True
            if not still_wanted():
                yield False
                return
            time.sleep(poll_interval)
        yield True
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _in_foreground(path: str) -> bool:
    """Whether this process may use its controlling terminal now: a background process that
    changed its modes or read it would be stopped (SIGTTOU/SIGTTIN), and its client would hang."""
    if path != TTY_PATH:
        return True  # a terminal given by path (tests): not our controlling one
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


@contextmanager
def terminal_session(path: str) -> Iterator[tuple[LineReader, IO[str], Callable[[], None]]]:
    """/dev/tty in line mode with echo, input typed so far discarded; modes restored exactly after
    (or earlier, by the third item: once the answer is known, before the call runs)."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)  # the client may read the same terminal
    try:
        saved = termios.tcgetattr(fd)
        _saved_modes[fd] = saved
        mode: list[Any] = [list(part) if isinstance(part, list) else part for part in saved]
        mode[0] |= termios.ICRNL  # Enter ends the answer
        mode[1] |= termios.OPOST | termios.ONLCR
        mode[3] |= termios.ICANON | termios.ECHO | termios.ECHOE | termios.ECHOK
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        termios.tcflush(fd, termios.TCIFLUSH)
        reader = LineReader(fd)
        reader.drain()
        with open(os.open(path, os.O_WRONLY | os.O_NOCTTY), "w", encoding="utf-8", errors="replace") as out:
            yield reader, out, lambda: restore(fd)
    finally:
        restore(fd)
        os.close(fd)


class TtyApprover:
    """Prompts for each offered held call, one at a time, on the terminal at `path`.

    Tests pass `tty_in`/`tty_out` streams (a pipe and a captured screen) instead of a path.
    """

    def __init__(
        self,
        broker: Broker,
        tty_in: IO[str] | None = None,
        tty_out: IO[str] | None = None,
        *,
        path: str | None = None,
        by: str | None = None,
        poll_interval: float = 0.1,
    ):
        self.broker = broker
        self.tty_in = tty_in
        self.out = tty_out
        self.path = path
        self.by = by
        self.poll_interval = poll_interval
        self._calls: queue.Queue[HeldCall | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def open(cls, broker: Broker, path: str = TTY_PATH, **options: Any) -> TtyApprover | None:
        """An approver on the controlling terminal, or None (said once, on stderr and in the log)."""
        try:
            os.close(os.open(path, os.O_RDWR | os.O_NOCTTY))
        except OSError as exc:
            log.warning(NO_TTY.format(path=path, why=exc.strerror or exc))
            return None
        return cls(broker, path=path, **options)

    def offer(self, held: HeldCall) -> None:
        """Queue a held call for the prompt (a broker listener: cheap, never blocks)."""
        self._calls.put(held)

    def attach(self) -> TtyApprover:
        """Listen to the broker's new holds and start the prompt thread."""
        self.broker.listeners.append(self.offer)
        if self.path is not None and threading.current_thread() is threading.main_thread():
            _restore_on_signals()
        return self.start()

    def start(self) -> TtyApprover:
        self._thread = threading.Thread(target=self._run, name="signoff-tty", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop prompting (a call being asked about stays held for the other channels)."""
        self._stop.set()
        self._calls.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        if self.offer in self.broker.listeners:
            self.broker.listeners.remove(self.offer)

    def _wanted(self, held: HeldCall) -> bool:
        return not self._stop.is_set() and self.broker.get(held.id).status == "pending"

    @contextmanager
    def _session(self, held: HeldCall) -> Iterator[tuple[LineReader, IO[str], Callable[[], None]] | None]:
        """The terminal for one question (None if the call was settled while waiting for a turn)."""
        if self.path is not None:
            with terminal_turn(self.path, lambda: self._wanted(held), self.poll_interval) as turn:
                if not turn or not self._wanted(held):
                    yield None
                    return
                with terminal_session(self.path) as session:
                    yield session
            return
        assert self.tty_in is not None and self.out is not None
        reader = LineReader(self.tty_in.fileno())
        reader.drain()
        yield reader, self.out, lambda: None

    def _run(self) -> None:
        while True:
            held = self._calls.get()
            if held is None:
                return
            try:
                if self.broker.get(held.id).status != "pending":
                    continue
                with self._session(held) as session:
                    if session is None:
                        continue
                    reader, out, give_back = session
                    out.write("\nsignoff: a tool call needs your approval\n" + render_held(held))
                    answer = prompt(
                        self.broker,
                        held,
                        reader,
                        out,
                        channel="tty",
                        by=self.by,
                        poll_interval=self.poll_interval,
                        on_idle=functools.partial(self._stopping, out),
                        keys_help=TTY_HELP,
                        on_answer=give_back,
                    )
            except _Stopped:
                return
            except EOFError:
                log.warning("the terminal closed; tty approvals stop (other channels still work)")
                return
            except (OSError, termios.error) as exc:
                log.warning(
                    "cannot ask on the terminal about %s (%s); it stays held for the other channels",
                    held.id,
                    getattr(exc, "strerror", None) or exc,
                )
                continue
            except SignoffError as exc:  # a store error: the call stays held, other channels can decide
                log.error("tty approval of %s failed: %s", held.id, exc)
                continue
            if answer == "quit":
                log.info("tty approvals switched off from the terminal")
                return

    def _stopping(self, out: IO[str]) -> None:
        if self._stop.is_set():
            out.write("\n(signoff stopped asking here)\n")
            out.flush()
            raise _Stopped


class _Stopped(Exception):
    """stop() was called while a prompt was waiting for a key."""
