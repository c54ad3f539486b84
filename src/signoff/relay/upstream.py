"""Connections to the real MCP servers signoff wraps.

A stdio upstream is a child process spoken to in raw newline-delimited JSON-RPC frames: bytes
that signoff does not change are forwarded as they came, which keeps the hot path cheap and the
proxy transparent. An HTTP upstream (streamable HTTP or legacy SSE) goes through the MCP SDK's
client transports, imported only when such an upstream is configured.

Every upstream hands each frame it receives to `on_frame(upstream, raw, message)` and reports
its end through `on_exit(upstream, error)`; `start()` may be called again after an exit, which is
how a crashed server is restarted on the next call.
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from signoff.errors import UpstreamCrashed, UpstreamError, UpstreamStartError
from signoff.relay import jsonrpc

log = logging.getLogger("signoff.upstream")

MAX_FRAME = 64 * 1024 * 1024
"""Largest frame accepted from an upstream (base64 images and file contents can be large)."""

STDERR_TAIL_LINES = 20

FrameHandler = Callable[["Upstream", bytes | None, dict[str, Any]], Awaitable[None]]
ExitHandler = Callable[["Upstream", UpstreamError], Awaitable[None]]


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one upstream: a command (stdio) or a URL (streamable HTTP / SSE)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    transport: str = "stdio"  # stdio | http | sse
    timeout: float = 300.0
    """Longest wait for the answer to one forwarded request (a held call's wait is not counted)."""
    startup_timeout: float = 60.0
    """Longest wait for the process to start and answer `initialize`."""
    share: str = "auto"
    """HTTP serving: `session` (an upstream per client session), `shared` (one, started at launch)
    or `auto` (shared for a stdio server when the client needs no back channel; see share.py)."""

    @property
    def label(self) -> str:
        if self.command:
            return f"{self.name} ({' '.join([self.command, *self.args])})"
        return f"{self.name} ({self.url})"


class Upstream:
    """One real server; subclasses move the frames."""

    def __init__(self, spec: ServerSpec):
        self.spec = spec
        self.name = spec.name
        self.alive = False
        self.generation = 0
        self.on_frame: FrameHandler | None = None
        self.on_exit: ExitHandler | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def failure(self, cls: type[UpstreamError], message: str) -> UpstreamError:
        """An error naming this upstream, with its stderr tail attached."""
        return cls(message, server=self.name, stderr_tail=self.stderr_tail())

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        raise NotImplementedError

    async def send(self, frame: bytes | dict[str, Any]) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def _deliver(self, raw: bytes | None, message: dict[str, Any]) -> None:
        assert self.on_frame is not None
        await self.on_frame(self, raw, message)

    async def _exited(self, generation: int, error: UpstreamError) -> None:
        if generation != self.generation or not self.alive:
            return  # an older process, already replaced
        self.alive = False
        log.warning("%s", str(error).splitlines()[0])
        if self.on_exit is not None:
            await self.on_exit(self, error)


class StdioUpstream(Upstream):
    """A child process speaking MCP over its stdin/stdout."""

    def __init__(self, spec: ServerSpec):
        super().__init__(spec)
        self._proc: anyio.abc.Process | None = None
        self._send_lock = anyio.Lock()
        self._stderr_done = anyio.Event()

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        spec = self.spec
        assert spec.command
        env = {**os.environ, **spec.env}
        self._stderr.clear()
        try:
            proc = await anyio.open_process(
                [spec.command, *spec.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=spec.cwd,
                start_new_session=True,  # a Ctrl-C in the client's terminal is signoff's to handle
            )
        except FileNotFoundError:
            raise self.failure(
                UpstreamStartError,
                f"could not start upstream {spec.label}: command {spec.command!r} not found; check the command and PATH",
            ) from None
        except OSError as exc:
            raise self.failure(UpstreamStartError, f"could not start upstream {spec.label}: {exc}") from None
        self.generation += 1
        self._proc = proc
        self._stderr_done = anyio.Event()
        self.alive = True
        log.info("started upstream %s, pid %s", spec.label, proc.pid)
        tg.start_soon(self._read_stdout, proc, self.generation)
        tg.start_soon(self._read_stderr, proc, self._stderr_done)

    async def send(self, frame: bytes | dict[str, Any]) -> None:
        proc = self._proc
        if not self.alive or proc is None or proc.stdin is None:
            raise self.failure(UpstreamCrashed, f"upstream {self.spec.label} is not running")
        data = frame if isinstance(frame, bytes) else jsonrpc.encode(frame)
        try:
            async with self._send_lock:
                await proc.stdin.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise self.failure(UpstreamCrashed, f"upstream {self.spec.label} closed its input") from None

    async def _read_stdout(self, proc: anyio.abc.Process, generation: int) -> None:
        assert proc.stdout is not None
        reader = BufferedByteReceiveStream(proc.stdout)
        try:
            while True:
                line = await reader.receive_until(b"\n", MAX_FRAME)
                if not line.strip():
                    continue
                try:
                    message = jsonrpc.decode(line)
                except jsonrpc.FrameError as exc:
                    await self._malformed(line, str(exc))
                    continue
                raw = line + b"\n"
                if isinstance(message, list):  # batch: hand on one message at a time
                    for item in message:
                        await self._deliver(None, item)
                else:
                    await self._deliver(raw, message)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        except anyio.DelimiterNotFound:
            log.error("%s sent a frame larger than %d bytes; stopping it", self.name, MAX_FRAME)
            proc.kill()
        code = await self._reap(proc)
        with anyio.move_on_after(1):  # let the last stderr lines in: they explain the exit
            await self._stderr_done.wait()
        await self._exited(
            generation,
            self.failure(UpstreamCrashed, f"upstream {self.spec.label} exited (code {code})"),
        )

    async def _malformed(self, line: bytes, why: str) -> None:
        """Log a non-JSON-RPC line and answer it as a JSON-RPC peer would; keep serving."""
        text = line.decode("utf-8", "replace")
        log.warning("%s wrote a malformed frame (%s): %.200s", self.name, why, text)
        self._stderr.append(f"[stdout, not JSON-RPC] {text[:200]}")
        try:
            await self.send(jsonrpc.error(None, jsonrpc.PARSE_ERROR, f"Parse error: {why}"))
        except UpstreamError:
            pass

    async def _read_stderr(self, proc: anyio.abc.Process, done: anyio.Event) -> None:
        assert proc.stderr is not None
        reader = BufferedByteReceiveStream(proc.stderr)
        try:
            while True:
                line = await reader.receive_until(b"\n", 1024 * 1024)
                text = line.decode("utf-8", "replace").rstrip()
                self._stderr.append(text)
                log.info("[%s] %s", self.name, text)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.ClosedResourceError):
            pass
        finally:
            done.set()

    async def _reap(self, proc: anyio.abc.Process) -> int | None:
        with anyio.move_on_after(2):
            return await proc.wait()
        proc.kill()
        with anyio.move_on_after(2):
            return await proc.wait()
        return None

    async def stop(self) -> None:
        """Close stdin, then terminate, then kill: each step bounded."""
        proc = self._proc
        self.alive = False
        if proc is None or proc.returncode is not None:
            return
        with anyio.CancelScope(shield=True):
            if proc.stdin is not None:
                try:
                    await proc.stdin.aclose()
                except (anyio.BrokenResourceError, OSError):
                    pass
            with anyio.move_on_after(2):
                await proc.wait()
                return
            proc.terminate()
            with anyio.move_on_after(2):
                await proc.wait()
                return
            proc.kill()


class HttpUpstream(Upstream):
    """A server reached over streamable HTTP or legacy SSE, through the SDK's client transports."""

    def __init__(self, spec: ServerSpec):
        super().__init__(spec)
        self._write: Any = None
        self._scope: anyio.CancelScope | None = None
        self._initialize_id: Any = None
        self.protocol_version: str | None = None
        """Negotiated in `initialize`; every later request carries it as MCP-Protocol-Version, so the
        server treats signoff as the revision it negotiated (event ids, resumable streams)."""

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        self.generation += 1
        try:
            with anyio.fail_after(self.spec.startup_timeout):
                await tg.start(self._run, self.generation)
        except TimeoutError:
            raise self.failure(UpstreamStartError, f"could not connect to upstream {self.spec.label}") from None

    async def _run(self, generation: int, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        import httpx2  # the SDK's HTTP client library (its own factory is private)
        from mcp.client.sse import sse_client
        from mcp.client.streamable_http import streamable_http_client

        spec = self.spec
        error: UpstreamError = self.failure(UpstreamCrashed, f"upstream {spec.label} closed the connection")
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                if spec.transport == "sse":
                    cm = sse_client(spec.url or "", headers=dict(spec.headers))
                else:
                    # the SDK transports' timeouts: 30 s to connect/write, 300 s between reads of a stream
                    client = httpx2.AsyncClient(headers=dict(spec.headers), timeout=httpx2.Timeout(30.0, read=300.0))
                    cm = streamable_http_client(spec.url or "", http_client=client)
                async with cm as streams:
                    read, self._write = streams[0], streams[1]
                    self.alive = True
                    task_status.started()
                    async for item in read:
                        if isinstance(item, Exception):
                            log.warning("%s: transport error: %s", self.name, item)
                            self._stderr.append(f"transport error: {item}")
                            continue
                        message = item.message.model_dump(by_alias=True, mode="json", exclude_none=True)
                        if (
                            self._initialize_id is not None
                            and message.get("id") == self._initialize_id
                            and "method" not in message
                        ):
                            version = (message.get("result") or {}).get("protocolVersion")
                            self.protocol_version = version if isinstance(version, str) else None
                            self._initialize_id = None
                        await self._deliver(None, message)
            except Exception as exc:  # noqa: BLE001 - top of this connection's task: report, never crash the proxy
                detail = _first_error(exc)
                self._stderr.append(detail)
                if not self.alive:
                    raise self.failure(UpstreamStartError, f"could not connect to upstream {spec.label}: {detail}") from exc
                error = self.failure(UpstreamCrashed, f"upstream {spec.label} failed: {detail}")
        self._write = None
        await self._exited(generation, error)

    async def send(self, frame: bytes | dict[str, Any]) -> None:
        from mcp.shared.message import ClientMessageMetadata, SessionMessage
        from mcp_types import jsonrpc_message_adapter

        if not self.alive or self._write is None:
            raise self.failure(UpstreamCrashed, f"upstream {self.spec.label} is not connected")
        message = jsonrpc.decode(frame) if isinstance(frame, bytes) else frame
        assert isinstance(message, dict)
        if message.get("method") == "initialize" and "id" in message:
            self._initialize_id, self.protocol_version = message["id"], None
        metadata = None
        if self.protocol_version is not None:
            metadata = ClientMessageMetadata(headers={"mcp-protocol-version": self.protocol_version})
        try:
            typed = jsonrpc_message_adapter.validate_python(message)
            await self._write.send(SessionMessage(typed, metadata))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise self.failure(UpstreamCrashed, f"upstream {self.spec.label} connection closed") from None

    async def stop(self) -> None:
        self.alive = False
        if self._scope is not None:
            self._scope.cancel()


def _first_error(exc: BaseException) -> str:
    """The innermost useful message of an exception group (the SDK's task groups nest them)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def make_upstream(spec: ServerSpec) -> Upstream:
    return StdioUpstream(spec) if spec.command else HttpUpstream(spec)
