"""What the relay does when an upstream fails: answer every waiting request, never hang.

A request to an upstream that crashed, could not start or did not answer within its bound is
answered now — a tool result with `isError` for a call (so the model can react), a JSON-RPC
error for anything else — naming the server and quoting the last lines of its stderr. Split
from proxy.py, whose `Proxy` mixes this in.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import anyio

from signoff.relay import jsonrpc
from signoff.errors import UpstreamError, UpstreamTimeout
from signoff.gate import Admission
from signoff.model import ToolCall

if TYPE_CHECKING:
    from signoff.relay.proxy import Pending, Proxy
    from signoff.relay.upstream import Upstream

log = logging.getLogger("signoff.proxy")

WATCHDOG_INTERVAL = 0.25


class FailureHandling:
    """Mixed into `Proxy`: failure answers, upstream exits, and the hang watchdog."""

    def tool_error(self: Proxy, request_id: Any, text: str) -> dict[str, Any]:
        """signoff's own `isError` result, in the shape the client's protocol revision needs."""
        answer = jsonrpc.tool_error(request_id, text)
        if self.session.modern_caps is not None:
            answer["result"]["resultType"] = "complete"
        return answer

    async def _fail(
        self: Proxy, client_id: Any, method: str, exc: UpstreamError, call: ToolCall | None, admission: Admission | None
    ) -> None:
        """Answer a request that the upstream could not: a tool result for calls, else an error."""
        text = str(exc)
        if call is not None and admission is not None:
            self.gate.finished(call, admission, is_error=True, error=text.splitlines()[0])
        if client_id is None:
            return
        if method == "tools/call":
            await self.send_client(self.tool_error(client_id, text))
        else:
            await self.send_client(jsonrpc.error(client_id, jsonrpc.UPSTREAM_ERROR, text))

    async def _upstream_exited(self: Proxy, up: Upstream, error: UpstreamError) -> None:
        """Every request in flight to a dead upstream is answered now; the next one restarts it."""
        pending, self.pending[up] = self.pending[up], {}
        for entry in pending.values():
            await self._settle(entry, error)

    async def _settle(self: Proxy, entry: Pending, error: UpstreamError) -> None:
        if entry.on_response is not None and entry.call is None:
            await entry.on_response(jsonrpc.error(entry.client_id, jsonrpc.UPSTREAM_ERROR, str(error)))
        else:
            await self._fail(entry.client_id, entry.method, error, entry.call, entry.admission)

    async def _watchdog(self: Proxy) -> None:
        """Answer requests the upstream left unanswered past their bound, and cancel them upstream."""
        while True:
            await anyio.sleep(WATCHDOG_INTERVAL)
            now = time.monotonic()
            for up in self.upstreams:
                expired = [(key, p) for key, p in self.pending[up].items() if p.deadline <= now]
                for key, entry in expired:
                    self.pending[up].pop(key, None)
                    bound = up.spec.timeout if entry.client_id is not None else up.spec.startup_timeout
                    error = up.failure(
                        UpstreamTimeout, f"upstream {up.spec.label} did not answer {entry.method} within {bound:g}s"
                    )
                    log.warning("%s", str(error).splitlines()[0])
                    await self._send_upstream_quietly(
                        up, jsonrpc.notification("notifications/cancelled", {"requestId": key, "reason": "timed out"})
                    )
                    await self._settle(entry, error)
