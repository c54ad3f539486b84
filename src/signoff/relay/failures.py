"""What the relay does when an upstream fails: answer every waiting request, never hang.

A request to an upstream that crashed, could not start or did not answer within its bound is
answered now — a tool result with `isError` for a call (so the model can react), a JSON-RPC
error for anything else (`SessionContext.fail`) — naming the server and quoting the last lines
of its stderr. proxy.py hooks `upstream_exited` to every upstream and runs `watchdog` per session.
"""

from __future__ import annotations

import logging
import time

import anyio

from signoff.errors import UpstreamError, UpstreamTimeout
from signoff.relay import jsonrpc
from signoff.relay.context import Pending, SessionContext
from signoff.relay.upstream import Upstream

log = logging.getLogger("signoff.proxy")

WATCHDOG_INTERVAL = 0.25


async def upstream_exited(ctx: SessionContext, up: Upstream, error: UpstreamError) -> None:
    """Every request in flight to a dead upstream is answered now; the next one restarts it."""
    pending, ctx.pending[up] = ctx.pending[up], {}
    for entry in pending.values():
        await settle(ctx, entry, error)


async def settle(ctx: SessionContext, entry: Pending, error: UpstreamError) -> None:
    """Answer one request that will get no answer from its upstream."""
    if entry.on_response is not None and entry.call is None:
        await entry.on_response(jsonrpc.error(entry.client_id, jsonrpc.UPSTREAM_ERROR, str(error)))
    else:
        await ctx.fail(entry.client_id, entry.method, error, entry.call, entry.admission)


async def watchdog(ctx: SessionContext) -> None:
    """Answer requests the upstream left unanswered past their bound, and cancel them upstream."""
    while True:
        await anyio.sleep(WATCHDOG_INTERVAL)
        now = time.monotonic()
        for up in ctx.upstreams:
            expired = [(key, p) for key, p in ctx.pending[up].items() if p.deadline <= now]
            for key, entry in expired:
                ctx.pending[up].pop(key, None)
                bound = up.spec.timeout if entry.client_id is not None else up.spec.startup_timeout
                error = up.failure(UpstreamTimeout, f"upstream {up.spec.label} did not answer {entry.method} within {bound:g}s")
                log.warning("%s", str(error).splitlines()[0])
                await ctx.send_upstream(
                    up, jsonrpc.notification("notifications/cancelled", {"requestId": key, "reason": "timed out"})
                )
                await settle(ctx, entry, error)
