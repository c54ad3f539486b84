"""The tools/call layer: the one place where a tool call is decided, in every shape it can take.

Every `tools/call` a session relays passes here, and only here is one let through: the gate
(policy → broker) checks it, a held call waits for a human (withdrawn if the client cancels it),
and an admitted call is forwarded with exactly the arguments that were judged (or a human's edit).
A call in a shape the policy cannot judge the way the server will run it (shapes.py: a
notification, a method imitating `tools/call`, a tool name imitating another, arguments that are
not an object) is refused and audited. A stateless client's retry that presents an approval round
(rounds.py) resumes the held call it is bound to. On the way back, the call's outcome is recorded
(`Gate.finished`) once its answer is on its way to the client.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from signoff.gate import Admission, checked
from signoff.model import ToolCall
from signoff.relay import jsonrpc
from signoff.relay.context import SessionContext
from signoff.relay.layers import Frame, Layer
from signoff.relay.passthrough import Route
from signoff.relay.rounds import INPUT_KEY, ClientLink, Round
from signoff.relay.shapes import odd_tool_name
from signoff.relay.upstream import Upstream

log = logging.getLogger("signoff.proxy")


class ToolCallGate(Layer):
    """Decides every tools/call; everything else passes through."""

    def __init__(self, ctx: SessionContext, router: Route):
        super().__init__(ctx)
        self.router = router
        """The bottom layer: which upstream serves a tool name."""
        self.rounds: dict[str, Round] = {}
        """Approval dialogs sent to stateless clients as input rounds, by requestState."""

    # ------------------------------------------------------------------ client → upstream

    async def handle_client(self, frame: Frame) -> None:
        msg = frame.msg
        if frame.kind == jsonrpc.REQUEST and msg["method"] == "tools/call":
            await self._tools_call(frame.raw, msg)
        elif frame.kind == jsonrpc.NOTIFICATION and msg["method"] == "notifications/cancelled":
            scope = self.ctx.held.pop((msg.get("params") or {}).get("requestId"), None)
            if scope is not None:  # never reached the upstream: withdraw the held call
                scope.cancel()
                return
            await self.below.handle_client(frame)
        else:
            await self.below.handle_client(frame)

    async def refuse_shape(self, msg: dict[str, Any], kind: str, why: str | None = None) -> None:
        """A tool call in a shape the policy cannot judge as the server will run it: never runs.

        The front door (proxy.py) hands a tools/call notification or a method imitating tools/call
        here before anything else reads it (no translation, no routing)."""
        method = msg["method"]
        if why is None:
            why = (
                "a tools/call notification (no id) cannot be held or answered"
                if kind == jsonrpc.NOTIFICATION
                else f"method {method[:60]!r} imitates tools/call"
            )
        given = msg.get("params")
        params = given if isinstance(given, dict) else {}
        named = params.get("name")
        name = named if isinstance(named, str) else "?"
        target = self.router.route(name) or (self.ctx.upstreams[0], name)
        arguments = params.get("arguments")
        call = ToolCall(
            server=target[0].name,
            tool=target[1],
            session=self.ctx.session.id,
            client=self.ctx.session.client_name,
            arguments=arguments if isinstance(arguments, dict) else {},
        )
        log.warning("refused %s: %s", call.qualified, why)
        self.ctx.gate.refused(call, f"refused by signoff: {why}")
        if kind == jsonrpc.REQUEST and method != "tools/call":
            await self.ctx.refuse(msg["id"], jsonrpc.METHOD_NOT_FOUND, f"Method not found: {why}")
        elif kind == jsonrpc.REQUEST:
            await self.ctx.refuse(msg["id"], jsonrpc.INVALID_PARAMS, f"Invalid params: {why}")

    async def _tools_call(self, raw: bytes | None, msg: dict[str, Any]) -> None:
        request_id = msg["id"]
        params = msg.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            await self.ctx.refuse(request_id, jsonrpc.INVALID_PARAMS, "tools/call needs params.name")
            return
        target = self.router.route(params["name"])
        if target is None:
            await self.ctx.refuse(request_id, jsonrpc.INVALID_PARAMS, f"Unknown tool: {params['name']}")
            return
        up, tool = target
        arguments = params.get("arguments")
        why = odd_tool_name(tool, self.ctx.tools[up.name]) or (
            None if arguments is None or isinstance(arguments, dict) else "tools/call arguments must be an object"
        )
        if why is not None:
            await self.refuse_shape(msg, jsonrpc.REQUEST, why)
            return
        state = params.get("requestState")
        presented = self.rounds.pop(state, None) if isinstance(state, str) else None  # single use, even if refused
        call = ToolCall(
            server=up.name,
            tool=tool,
            arguments=arguments if isinstance(arguments, dict) else {},
            annotations=self.ctx.tools[up.name].get(tool, {}),
            session=self.ctx.session.id,
            client=self.ctx.session.client_name,
            input_schema=self.ctx.schemas[up.name].get(tool),
        )
        if presented is not None:  # a stateless client answering an approval dialog
            self.ctx.start_soon(self._resume, up, msg, call, presented)
            return
        admission = await checked(self.ctx.gate, call)
        if not admission.hold:
            await self._admitted(up, raw, msg, call, admission)
        else:
            self.ctx.held[request_id] = scope = anyio.CancelScope()  # now: a cancel or a reused id may follow at once
            self.ctx.start_soon(self._hold, up, raw, msg, call, admission, scope)

    async def _hold(
        self, up: Upstream, raw: bytes | None, msg: dict[str, Any], call: ToolCall, pending: Admission, scope: anyio.CancelScope
    ) -> None:
        token = ((msg.get("params") or {}).get("_meta") or {}).get("progressToken")

        async def progress(waited: float, message: str) -> None:
            if token is not None:
                params = {"progressToken": token, "progress": round(waited, 1), "message": message}
                await self.ctx.send_client(jsonrpc.notification("notifications/progress", params))

        link = ClientLink(self.ctx, self.rounds, msg, call)
        with scope:
            try:
                admission = await self.ctx.gate.hold(call, pending, progress, link)
            finally:
                self.ctx.held.pop(msg["id"], None)
        if scope.cancelled_caught:
            log.info("call %s withdrawn by the client while held", call.qualified)
            if link.round is not None:  # a retry presenting the round must not wait forever
                link.round.finish(Admission(False, "This tool call was withdrawn: the client cancelled it while held."))
            return  # a cancelled request gets no answer (MCP cancellation semantics)
        if link.round is not None:  # answered with an input round: the client's retry finishes it
            link.round.finish(admission)
            return
        await self._admitted(up, raw, msg, call, admission)

    async def _resume(self, up: Upstream, msg: dict[str, Any], retry: ToolCall, current: Round) -> None:
        """The client came back with an approval round: check it is the held call, apply its
        answer, then finish the held call (what runs is the held call, whatever the retry says)."""
        why = current.mismatch(retry, self.ctx.gate.policy_hash())
        if why is not None:
            log.warning("refused a retry of held call %s: %s", current.held_id, why)
            self.ctx.gate.refused(retry, f"refused by signoff: {why}")
            await self.ctx.send_client(
                self.ctx.tool_error(
                    msg["id"],
                    f"This tool call was refused: {why}. Make the call again without requestState; "
                    "it will be checked (and held) afresh.",
                )
            )
            return
        answer = (msg.get("params") or {}).get("inputResponses") or {}
        answer = answer.get(INPUT_KEY) if isinstance(answer, dict) else None
        if answer is not None and not current.done.is_set():
            await self.ctx.gate.client_answer(current.held_id, {"result": answer})
        await current.done.wait()
        assert current.admission is not None
        params = dict(current.params)
        meta = (msg.get("params") or {}).get("_meta")
        if isinstance(meta, dict):
            params["_meta"] = meta  # the retry's progress token and envelope, not the first request's
        else:
            params.pop("_meta", None)
        await self._admitted(up, None, {**msg, "params": params}, current.call, current.admission)

    async def _admitted(self, up: Upstream, raw: bytes | None, msg: dict[str, Any], call: ToolCall, admission: Admission) -> None:
        """The call's one continuation: refused, or forwarded with exactly what was judged."""
        if not admission.allowed:
            await self.ctx.send_client(self.ctx.tool_error(msg["id"], admission.text))
            return
        outgoing: bytes | dict[str, Any] | None = raw
        if admission.arguments is not None or raw is None or call.tool != msg["params"]["name"]:
            params = dict(msg["params"])
            params["name"] = call.tool
            if admission.arguments is not None:
                params["arguments"] = dict(admission.arguments)
            outgoing = {**msg, "params": params}
        await self.ctx.forward(up, outgoing, msg, call=call, admission=admission)

    # ------------------------------------------------------------------ upstream → client

    async def handle_upstream(self, frame: Frame) -> None:
        await self.above.handle_upstream(frame)
        pending = frame.pending
        if pending is not None and pending.call is not None and pending.admission is not None:
            # after the answer is on its way: recording it must not delay the client
            msg = frame.msg
            result = msg.get("result")
            is_error = "error" in msg or (isinstance(result, dict) and bool(result.get("isError")))
            error = str(msg["error"].get("message")) if isinstance(msg.get("error"), dict) else None
            self.ctx.gate.finished(pending.call, pending.admission, is_error=is_error, error=error)
