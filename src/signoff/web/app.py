"""`signoff ui`: the page a person keeps open while agents work.

One Starlette app over the shared store: a live queue of held calls from every proxy on the
machine (pushed with server-sent events, only when the queue changes), decisions, the audit
history, per-tool statistics that suggest rules to relax, the policy in force, and the kill
switch. The page itself is static HTML/CSS/JS (no build step) that renders every value with
`textContent`, never as HTML.

Two kinds of visitor: the owner of the master token sees everything; a person who followed a
notification's review link (web/review.py) holds a cookie for ONE held call and may only view
and decide that call.
"""

from __future__ import annotations

import json
import logging
import math
from html import escape as html_escape
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from signoff.policy import risk
from signoff.approvals.audit import DECISIONS
from signoff.approvals.broker import Broker, compact_arguments
from signoff.errors import AlreadyDecidedError, CallGoneError, DecisionError, PolicyError, StoreError, UnknownCallError
from signoff.model import canonical_json
from signoff.approvals.present import for_held
from signoff.redact import redact_held
from signoff.approvals.store import GONE_WORDS, gone_line
from signoff.web import links, policy_edit
from signoff.web.security import COOKIE, Guard

log = logging.getLogger("signoff.web")

EVENT_POLL = 0.1
"""How often an open page's stream checks the store's change counter (one cheap PRAGMA)."""
HEARTBEAT = 15.0
"""An idle stream sends only an SSE comment this often, so proxies and browsers keep it open."""
PUSH_BYTES_PER_SECOND = 1_000_000
"""Pushes are spaced so that one page receives at most ~1 MB/s however fast the queue changes."""
PAGE_VALUE_CHARS = 2000
PAGE_ARGS_CHARS = 20000
"""The queue carries each call's arguments folded to this size; the call's own view has them all."""
PAGE_SCHEMA_CHARS = 20000
GONE_SECONDS = 60.0
"""A call that left the queue because nobody waits for it stays on the page, greyed, this long."""
LIVENESS_CHECK = 1.0
"""While waiting calls are on the page, their proxies' leases are checked this often (a kill -9
writes nothing to the store, so no change would otherwise tell the page)."""
CALL_COOKIE = "signoff_call"
DECISION_OPTIONS = "".join(f"<option>{html_escape(d)}</option>" for d in DECISIONS)
"""The History filter offers every decision the audit trail can hold (one list: audit.DECISIONS)."""
STATIC = resources.files("signoff.web").joinpath("static")
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:;"
                " form-action 'self'; frame-ancestors 'none'",
                "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


@dataclass(frozen=True)
class Access:
    """Who is asking: the page's owner (call is None), or a review link's holder for one call."""

    call: str | None = None

    @property
    def full(self) -> bool:
        return self.call is None

    def may_see(self, held_id: str) -> bool:
        return self.call is None or self.call == held_id


class UI:
    """State shared by the routes: the broker (and its store), the guard, the policy file."""

    def __init__(self, broker: Broker, guard: Guard, *, policy_path: str | None = None):
        self.broker = broker
        self.store = broker.store
        self.guard = guard
        self.policy_path = policy_path
        self.link_key = links.link_key()
        self.spent = links.SpentLinks()

    # ------------------------------------------------------------------ views of the store (reads never write)

    def queue(self, access: Access = Access()) -> dict[str, Any]:
        pending = [h for h in self.broker.pending() if access.may_see(h.id)]
        kill = self.broker.kill_state()
        out: dict[str, Any] = {
            "pending": [self.held_view(h, brief=True) for h in pending],
            "kill": {"on": kill.on, "reason": kill.reason, "by": kill.by, "at": kill.at},
            "now": time.time(),
            "scope": access.call,
            "gone": [gone_view(h) for h in self.store.recently_gone(time.time() - GONE_SECONDS) if access.may_see(h.id)],
        }
        if access.call and not pending:  # the one call this visitor may see is no longer waiting
            held = self.store.get_held(access.call)
            out["scoped_outcome"] = None if held is None else {
                "id": held.id, "qualified": held.qualified, "status": held.status, "by": held.decided_by,
                "channel": held.channel, "reason": held.decision_reason}
        return out

    def queue_signature(self, access: Access = Access()) -> str:
        return self.store.queue_signature() + (access.call or "")

    def held_view(self, held: Any, *, brief: bool = False, access: Access = Access()) -> dict[str, Any]:
        """One held call as the page shows it. (Argument redaction belongs right here.)"""
        view = redact_held(held.as_dict())  # secrets never reach the page (the tool still gets them)
        level, why = risk.assess(held.rule, held.annotations, held.arguments,
                                 actions=getattr(held, "actions", None) or ())
        view.update(qualified=held.qualified, risk=level, risk_why=why)
        shown = for_held(held).as_dict()  # what the call does, first: headline, facts, preview (redacted)
        del shown["arguments"]  # the view has them already
        view.update(presentation=shown, facts=shown["facts"])
        if brief:
            view["history_count"] = len(held.session_history)
            del view["session_history"]
            shown = compact_arguments(view["arguments"], PAGE_VALUE_CHARS, PAGE_ARGS_CHARS)  # the redacted ones
            view["arguments_folded"] = shown != dict(view["arguments"])
            view["arguments"] = shown
            if held.input_schema and len(canonical_json(dict(held.input_schema))) > PAGE_SCHEMA_CHARS:
                view["input_schema"] = None
                view["input_schema_folded"] = True
        elif access.full:
            view["similar"] = self.similar(held)
        return view

    def similar(self, held: Any, limit: int = 8) -> list[dict[str, Any]]:
        """Earlier decisions on the same tool, newest first (same arguments marked)."""
        rows = self.store.audit_similar(held.server, held.tool, ("approved", "denied", "timeout"), held.id, limit)
        mine = canonical_json(dict(held.arguments))
        return [{"time": r["time"], "decision": r["decision"], "by": r["decided_by"], "reason": r["reason"],
                 "same_arguments": r["arguments"] == mine} for r in rows]

    def stats(self) -> list[dict[str, Any]]:
        """Per tool: how often held, approved, denied — and a suggestion when it is always approved."""
        counts: dict[str, dict[str, int]] = {}
        for server, tool, decision, rows in self.store.audit_counts():
            c = counts.setdefault(f"{server}.{tool}", {"held": 0, "approved": 0, "denied": 0, "timeout": 0,
                                                        "allowed": 0})
            if decision in c:
                c[decision] += rows
        out = []
        for tool, c in sorted(counts.items()):
            suggestion = None
            if c["approved"] >= 3 and c["denied"] == 0 and c["timeout"] == 0:
                suggestion = f'always approved ({c["approved"]}×): consider `- tool: "{tool}"\\n  decision: allow`'
            out.append({"tool": tool, **c, "suggestion": suggestion})
        return out

    def policy_view(self) -> dict[str, Any]:
        return policy_edit.page(self.store, self.policy_path)


def gone_view(held: Any) -> dict[str, Any]:
    """A call nobody waits for any more, as the page greys it: what, why in plain words, until when."""
    return {"id": held.id, "qualified": held.qualified, "status": held.status,
            "words": GONE_WORDS.get(held.status, held.status), "line": gone_line(held),
            "reason": held.decision_reason or "", "until": (held.decided_at or time.time()) + GONE_SECONDS}


def edited_arguments_problem(broker: Broker, held_id: str, arguments: Any) -> str | None:
    """Why edited arguments cannot be sent to the tool (not an object, or against its schema)."""
    if not isinstance(arguments, dict):
        return "edited arguments must be a JSON object"
    try:
        schema = broker.get(held_id).input_schema
    except UnknownCallError:
        return None  # the decision itself reports the unknown id
    if not schema:
        return None
    import jsonschema

    try:
        jsonschema.validate(arguments, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
        return f"edited arguments do not fit the tool's input schema: {where}: {exc.message}"
    except jsonschema.SchemaError:
        return None  # the tool's own schema is broken: do not block the human on it
    return None


def create_app(ui: UI) -> Starlette:
    from signoff.web import review

    guard = ui.guard

    def refuse(status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    def who(request: Request) -> tuple[Access | None, Response | None]:
        """Host header, then the master token (query once → cookie) or a call-scoped cookie."""
        problem = guard.host_refusal(request.headers.get("host"))
        if problem:
            return None, PlainTextResponse(problem, status_code=421)
        if guard.token_ok(request.cookies.get(COOKIE)):
            return Access(), None
        call = links.cookie_call(ui.link_key, request.cookies.get(CALL_COOKIE))
        if call is not None:
            return Access(call), None
        return None, refuse(401, "missing or wrong token: open the URL that `signoff ui` printed")

    def owner(request: Request) -> Response | None:
        """Routes only the master token may use (history, statistics, policy, kill switch)."""
        access, refusal = who(request)
        if refusal:
            return refusal
        if access is not None and not access.full:
            return refuse(403, "this review link opens one call only; open the page's own URL for the rest")
        return None

    async def guarded_post(request: Request, *, totp: bool = False) -> tuple[Access | None, dict[str, Any] | None, Response | None]:
        access, refusal = who(request)
        if refusal:
            return None, None, refusal
        problem = guard.origin_refusal(request.headers.get("origin"), request.headers.get("referer"))
        if problem:
            return None, None, refuse(403, problem)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, None, refuse(400, "the request body must be JSON")
        if not isinstance(body, dict) or not guard.use_csrf(request.headers.get("x-csrf-token") or body.get("csrf")):
            return None, None, refuse(403, "missing, used or expired CSRF token: reload the page")
        if totp:
            problem, wait = guard.totp_refusal(str(body.get("totp") or ""), request.client.host if request.client else "-")
            if problem and wait:
                return None, None, JSONResponse({"error": problem}, status_code=429,
                                                headers={"Retry-After": str(math.ceil(wait))})
            if problem:
                return None, None, refuse(403, problem)
        return access, body, None

    def with_csrf(payload: dict[str, Any], status: int = 200) -> JSONResponse:
        return JSONResponse({**payload, "csrf": guard.new_csrf()}, status_code=status)

    # ------------------------------------------------------------------ pages

    async def index(request: Request) -> Response:
        token = request.query_params.get("token")
        problem = guard.host_refusal(request.headers.get("host"))
        if problem:
            return PlainTextResponse(problem, status_code=421)
        if token is not None:
            if not guard.token_ok(token):
                return refuse(401, "wrong token")
            response = Response(status_code=303, headers={"Location": "/"})  # drop the token from the URL
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=30 * 24 * 3600)
            return response
        access, refusal = who(request)
        if refusal:
            return refusal
        assert access is not None
        html = STATIC.joinpath("index.html").read_text(encoding="utf-8")
        html = (html.replace("{{csrf}}", guard.new_csrf()).replace("{{totp}}", "1" if guard.totp_required else "")
                .replace("{{scope}}", html_escape(access.call or ""))
                .replace("{{decision_options}}", DECISION_OPTIONS))
        return HTMLResponse(html, headers=PAGE_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        _, refusal = who(request)
        if refusal and not (name == "app.css" and refusal.status_code == 401):  # the review landing page's style
            return refusal
        types = {"app.js": "text/javascript", "app.css": "text/css", "form.js": "text/javascript"}
        if name not in types:
            return PlainTextResponse("not found", status_code=404)
        return Response(STATIC.joinpath(name).read_text(encoding="utf-8"), media_type=types[name],
                        headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ reads

    async def api_queue(request: Request) -> Response:
        access, refusal = who(request)
        return refusal or JSONResponse(await anyio.to_thread.run_sync(ui.queue, access))

    async def api_held(request: Request) -> Response:
        access, refusal = who(request)
        if refusal:
            return refusal
        assert access is not None
        held_id = request.path_params["held_id"]
        if not access.may_see(held_id):
            return refuse(403, "this review link opens another call")
        try:
            held = await anyio.to_thread.run_sync(ui.broker.get, held_id)
        except UnknownCallError as exc:
            return refuse(404, str(exc))
        return JSONResponse(await anyio.to_thread.run_sync(lambda: ui.held_view(held, access=access)))

    async def api_audit(request: Request) -> Response:
        refusal = owner(request)
        if refusal:
            return refusal
        from signoff.approvals.audit import AuditLog

        q = request.query_params
        rows = await anyio.to_thread.run_sync(
            lambda: AuditLog(ui.store).query(tool=q.get("tool") or None, decision=q.get("decision") or None))
        return JSONResponse({"rows": rows[-500:][::-1]})

    async def api_stats(request: Request) -> Response:
        return owner(request) or JSONResponse({"tools": await anyio.to_thread.run_sync(ui.stats)})

    async def api_policy(request: Request) -> Response:
        return owner(request) or JSONResponse(await anyio.to_thread.run_sync(ui.policy_view))

    async def events(request: Request) -> Response:
        """The queue, pushed when it changes: the store's change counter is polled (cheap), the
        queue's signature read only when it moved, and the queue itself sent only when that differs."""
        access, refusal = who(request)
        if refusal:
            return refusal
        from sse_starlette.sse import EventSourceResponse

        async def stream() -> AsyncIterator[dict[str, str]]:
            token: int | None = None
            signature: str | None = None
            next_deadline = 0.0
            quiet_until = 0.0  # a model flooding the queue cannot make the page stream without pause
            next_check = 0.0
            waiting = False  # the last queue pushed had calls a proxy waits on
            while True:
                if waiting and time.monotonic() >= next_check:  # closes them if their proxy died (commits → push)
                    next_check = time.monotonic() + LIVENESS_CHECK
                    await anyio.to_thread.run_sync(ui.broker.sweep)
                if time.monotonic() < quiet_until:
                    await anyio.sleep(min(EVENT_POLL, quiet_until - time.monotonic()))
                    continue
                current = await anyio.to_thread.run_sync(ui.store.change_token)
                due = bool(next_deadline) and time.time() >= next_deadline
                if current != token or due:
                    token = current
                    seen = await anyio.to_thread.run_sync(ui.queue_signature, access)
                    if seen != signature or due:
                        queue = await anyio.to_thread.run_sync(ui.queue, access)
                        signature = await anyio.to_thread.run_sync(ui.queue_signature, access)
                        retry = [h["deadline"] for h in queue["pending"] if h.get("hold_mode") == "retry"]
                        next_deadline = min(retry) if retry else 0.0
                        waiting = any(h.get("hold_mode") == "wait" for h in queue["pending"])
                        data = json.dumps(queue)
                        quiet_until = time.monotonic() + len(data) / PUSH_BYTES_PER_SECOND
                        yield {"event": "queue", "data": data}
                await anyio.sleep(EVENT_POLL)

        return EventSourceResponse(stream(), ping=int(HEARTBEAT))

    # ------------------------------------------------------------------ changes (POST only)

    async def api_decide(request: Request) -> Response:
        access, body, refusal = await guarded_post(request, totp=True)
        if refusal:
            return refusal
        assert body is not None and access is not None
        held_id = str(body.get("id"))
        if not access.may_see(held_id):
            return with_csrf({"error": "this review link opens another call"}, 403)
        arguments = body.get("arguments")
        if arguments is not None:
            problem = await anyio.to_thread.run_sync(lambda: edited_arguments_problem(ui.broker, held_id, arguments))
            if problem:
                return with_csrf({"error": problem}, 400)
        try:
            held = await anyio.to_thread.run_sync(lambda: ui.broker.decide(
                held_id, bool(body.get("approve")), reason=(body.get("reason") or None), channel="web",
                arguments=arguments, remember=(body.get("remember") or None) if access.full else None))
        except UnknownCallError as exc:
            return with_csrf({"error": str(exc)}, 404)
        except CallGoneError:  # nobody waits for it: say so plainly, and how the page shows it
            gone = gone_view(await anyio.to_thread.run_sync(ui.broker.get, held_id))
            return with_csrf({"error": f"{gone['line']}: {gone['reason']}" if gone["reason"] else gone["line"],
                              "gone": gone}, 410)
        except AlreadyDecidedError as exc:
            return with_csrf({"error": str(exc)}, 409)
        except (DecisionError, StoreError) as exc:
            return with_csrf({"error": str(exc)}, 400)
        return with_csrf({"ok": True, "status": held.status, "id": held.id, "qualified": held.qualified,
                          "decided_at": held.decided_at, "by": held.decided_by})

    async def api_kill(request: Request) -> Response:
        access, body, refusal = await guarded_post(request)
        if refusal:
            return refusal
        assert body is not None and access is not None
        if not access.full:
            return with_csrf({"error": "this review link opens one call only"}, 403)
        if body.get("on", True):
            await anyio.to_thread.run_sync(lambda: ui.broker.kill(str(body.get("reason") or "stopped from the web page")))
        else:
            await anyio.to_thread.run_sync(ui.broker.resume)
        return with_csrf({"ok": True, "kill": (await anyio.to_thread.run_sync(ui.queue))["kill"]})

    async def api_policy_edit(request: Request) -> Response:
        access, body, refusal = await guarded_post(request, totp=True)
        if refusal:
            return refusal
        assert body is not None and access is not None
        if not access.full:
            return with_csrf({"error": "this review link opens one call only"}, 403)
        if not ui.policy_path:
            return with_csrf({"error": "no policy file: start `signoff ui --policy FILE`"}, 400)
        try:
            if body.get("remove") is not None:
                text = policy_edit.remove_rule(ui.policy_path, int(body["remove"]))
            else:
                text = policy_edit.add_rule(ui.policy_path, body.get("rule") or {})
        except (PolicyError, ValueError) as exc:
            return with_csrf({"error": policy_edit.plain_error(str(exc))}, 400)
        return with_csrf({"ok": True, "text": text, "rules": policy_edit.rules(text, ui.policy_path)})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse(f"signoff ui home={guard.home_id}")

    return Starlette(routes=[
        Route("/", index),
        Route("/static/{name}", static),
        Route("/healthz", healthz),
        Route("/events", events),
        Route("/api/queue", api_queue),
        Route("/api/held/{held_id}", api_held),
        Route("/api/audit", api_audit),
        Route("/api/stats", api_stats),
        Route("/api/policy", api_policy),
        Route("/api/decide", api_decide, methods=["POST"]),
        Route("/api/kill", api_kill, methods=["POST"]),
        Route("/api/policy", api_policy_edit, methods=["POST"]),
        *review.routes(ui, guard, CALL_COOKIE),
    ])
