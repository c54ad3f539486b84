"""The client side of the proxy: MCP over stdio (raw frames) or streamable HTTP (via the SDK).

stdio is the hot path and stays at the byte level: a line from stdin is decoded once, strictly,
and handed to the relay with its canonical re-serialisation (never the original bytes, see
jsonrpc.py); frames to the client are written as they are. Malformed or ambiguous input is
answered with a JSON-RPC error and the proxy keeps serving. A missing or unusable standard input
ends signoff with one line on stderr, never a traceback or a hang.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from collections.abc import Callable
from typing import Any

import anyio

from signoff.errors import SignoffError
from signoff.gate import GateLoader
from signoff.relay import jsonrpc
from signoff.relay.proxy import Proxy
from signoff.relay.upstream import MAX_FRAME, ServerSpec

log = logging.getLogger("signoff.downstream")


class _StdioPipes:
    """Non-blocking stdin/stdout on the asyncio loop, falling back to threads for plain files."""

    def __init__(self, out_fd: int):
        self.out_fd = out_fd
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if _pollable(sys.stdin.fileno()):
            reader = asyncio.StreamReader(limit=MAX_FRAME)
            try:
                await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
                self.reader = reader
            except (ValueError, OSError):
                self.reader = None
        # else: a regular file or a device such as /dev/null, which epoll refuses: read in a thread
        try:
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, os.fdopen(self.out_fd, "wb", buffering=0)
            )
            self.writer = asyncio.StreamWriter(transport, protocol, None, loop)
        except (ValueError, OSError):
            self.writer = None

    async def readline(self) -> bytes:
        if self.reader is not None:
            try:
                return await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                return exc.partial
            except asyncio.LimitOverrunError as exc:
                await self._skip_line(exc.consumed)
                raise jsonrpc.FrameError(f"frame larger than {MAX_FRAME} bytes") from None
        return await anyio.to_thread.run_sync(sys.stdin.buffer.readline)

    async def _skip_line(self, buffered: int) -> None:
        """Drop the rest of an oversized frame (asyncio leaves it buffered: the next read would
        fail on it again, forever), so serving resumes with the next frame."""
        assert self.reader is not None
        while True:
            try:
                await self.reader.readexactly(buffered)
                await self.reader.readuntil(b"\n")  # the frame's tail, if it fits the limit
                return
            except asyncio.LimitOverrunError as exc:
                buffered = exc.consumed
            except asyncio.IncompleteReadError:
                return

    async def write(self, data: bytes) -> None:
        async with self._lock:
            if self.writer is not None:
                self.writer.write(data)
                await self.writer.drain()
            else:
                await anyio.to_thread.run_sync(os.write, self.out_fd, data)


async def serve_stdio(specs: list[ServerSpec], loader: GateLoader, *, out_fd: int = 1) -> None:
    """Serve one client on stdin/stdout until stdin closes.

    The policy loads (`loader`, a worker thread) after the upstreams were started, so a slow
    server boots meanwhile, and while the client's handshake and lists are relayed; a call that
    comes before the load finished waits for it. A broken policy stops signoff (exit 2) even if
    the client left at once.
    """
    check_stdio()
    pipes = _StdioPipes(out_fd)
    await pipes.open()
    received = 0

    async def send(frame: bytes | dict[str, Any]) -> None:
        try:
            await pipes.write(frame if isinstance(frame, bytes) else jsonrpc.encode(frame))
        except (BrokenPipeError, ConnectionResetError):
            log.info("the client closed stdout")

    proxy = Proxy(specs, send)
    async with anyio.create_task_group() as tg:
        await proxy.start(tg)
        tg.start_soon(loader.run)
        proxy.gate = loader.factory()
        try:
            while True:
                try:
                    line = await pipes.readline()
                except jsonrpc.FrameError as exc:
                    log.warning("client frame rejected: %s", exc)
                    await send(jsonrpc.error(None, jsonrpc.PARSE_ERROR, f"Parse error: {exc}"))
                    continue
                if not line:
                    break
                if not line.strip():
                    continue
                received += 1
                await dispatch_client_frame(proxy, line, send)
        finally:
            if received:
                log.info("client disconnected; stopping upstreams")
            else:
                log.warning("standard input ended before any message: no MCP client to serve; exiting")
            await proxy.close()
        loader.start()
        await loader.done.wait()  # a broken policy is reported even when the client left at once
        tg.cancel_scope.cancel()


async def dispatch_client_frame(proxy: Proxy, line: bytes, send: Callable[[dict[str, Any]], Any]) -> None:
    """Decode one client frame strictly and hand it to the relay with its canonical bytes.

    Garbage gets a parse error; a frame readers could disagree on gets an error answering its id."""
    try:
        message, canonical = jsonrpc.decode_client(line)
    except jsonrpc.FrameError as exc:
        log.warning("client frame refused (%s): %.200r", exc, line)
        if exc.request_id is None:
            await send(jsonrpc.error(None, jsonrpc.PARSE_ERROR, f"Parse error: {exc}"))
        else:
            await send(jsonrpc.error(exc.request_id, jsonrpc.INVALID_REQUEST, f"Invalid Request: {exc}"))
        return
    if isinstance(message, list):
        for item in message:  # each element alone, re-encoded: never the batch's bytes
            await proxy.from_client(None, item)
    else:
        await proxy.from_client(canonical, message)


def check_stdio() -> None:
    """Standard input and output must be open: an MCP client talks to signoff over them."""
    for name, stream in (("standard input", sys.stdin), ("standard output", sys.stdout)):
        if stream is None:
            raise SignoffError(
                f"{name} is closed: `signoff run` serves an MCP client on stdin/stdout; "
                "start it from the client's configuration (or use --http)"
            )


def _pollable(fd: int) -> bool:
    """A pipe, socket or terminal can go on the event loop; files and /dev/null cannot."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)
