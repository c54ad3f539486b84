"""The client side of the proxy: MCP over stdio (raw frames) or streamable HTTP (via the SDK).

stdio is the hot path and stays at the byte level: a line from stdin is decoded once and handed
to the relay, and frames to the client are written as they are. Malformed input is answered
with a JSON-RPC parse error and the proxy keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import anyio

from signoff import jsonrpc
from signoff.gate import Gate
from signoff.proxy import Proxy
from signoff.upstream import MAX_FRAME, ServerSpec

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
        reader = asyncio.StreamReader(limit=MAX_FRAME)
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
            self.reader = reader
        except (ValueError, OSError):
            self.reader = None  # stdin is a regular file: read it in a thread
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
            except asyncio.LimitOverrunError:
                raise jsonrpc.FrameError(f"frame larger than {MAX_FRAME} bytes") from None
        return await anyio.to_thread.run_sync(sys.stdin.buffer.readline)

    async def write(self, data: bytes) -> None:
        async with self._lock:
            if self.writer is not None:
                self.writer.write(data)
                await self.writer.drain()
            else:
                await anyio.to_thread.run_sync(os.write, self.out_fd, data)


async def serve_stdio(specs: list[ServerSpec], gate_factory: Callable[[], Gate], *, out_fd: int = 1) -> None:
    """Serve one client on stdin/stdout until stdin closes.

    The gate is made after the upstreams were started, so a slow server boots while signoff
    loads its policy; nothing is read from the client before that.
    """
    pipes = _StdioPipes(out_fd)
    await pipes.open()

    async def send(frame: bytes | dict[str, Any]) -> None:
        try:
            await pipes.write(frame if isinstance(frame, bytes) else jsonrpc.encode(frame))
        except (BrokenPipeError, ConnectionResetError):
            log.info("the client closed stdout")

    proxy = Proxy(specs, send)
    async with anyio.create_task_group() as tg:
        await proxy.start(tg)
        try:
            proxy.gate = gate_factory()
        except BaseException:
            await proxy.close()
            raise
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
                await dispatch_client_frame(proxy, line, send)
        finally:
            log.info("client disconnected; stopping upstreams")
            await proxy.close()
            tg.cancel_scope.cancel()


async def dispatch_client_frame(proxy: Proxy, line: bytes, send: Callable[[dict[str, Any]], Any]) -> None:
    """Decode one client frame and hand it to the relay; answer garbage with a parse error."""
    try:
        message = jsonrpc.decode(line)
    except jsonrpc.FrameError as exc:
        log.warning("client sent a malformed frame (%s): %.200r", exc, line)
        await send(jsonrpc.error(None, jsonrpc.PARSE_ERROR, f"Parse error: {exc}"))
        return
    if isinstance(message, list):
        for item in message:
            await proxy.from_client(None, item)
    else:
        await proxy.from_client(line if line.endswith(b"\n") else line + b"\n", message)
