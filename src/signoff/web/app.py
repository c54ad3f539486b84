"""`signoff ui`: the page a person keeps open while agents work.

One Starlette app over the shared store: a live queue of held calls from every proxy on the
machine (pushed with server-sent events), decisions, the audit history, per-tool statistics
that suggest rules to relax, the policy file, and the kill switch. The page itself is static
HTML/CSS/JS (no build step) that renders every value with `textContent`, never as HTML.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from signoff import risk
from signoff.broker import Broker
from signoff.errors import AlreadyDecidedError, DecisionError, PolicyError, StoreError, UnknownCallError
from signoff.model import canonical_json
from signoff.redact import redact_held
from signoff.web import policy_edit
from signoff.web.security import COOKIE, Guard

log = logging.getLogger("signoff.web")

EVENT_POLL = 0.1
HEARTBEAT = 15.0
STATIC = resources.files("signoff.web").joinpath("static")


class UI:
    """State shared by the routes: the broker (and its store), the guard, the policy file."""

    def __init__(self, broker: Broker, guard: Guard, *, policy_path: str | None = None):
        self.broker = broker
        self.store = broker.store
        self.guard = guard
        self.policy_path = policy_path

    # ------------------------------------------------------------------ views of the store

    def queue(self) -> dict[str, Any]:
        pending = self.broker.pending()
        kill = self.broker.kill_state()
        return {
            "pending": [self.held_view(h, brief=True) for h in pending],
            "kill": {"on": kill.on, "reason": kill.reason, "by": kill.by, "at": kill.at},
            "now": time.time(),
        }

    def held_view(self, held: Any, *, brief: bool = False) -> dict[str, Any]:
        view = redact_held(held.as_dict())  # secrets never reach the page (the tool still gets them)
        level, why = risk.assess(held.rule, {}, held.arguments)
        view.update(qualified=held.qualified, risk=level, risk_why=why)
        if not brief:
            view["similar"] = self.similar(held)
        return view

    def similar(self, held: Any, limit: int = 8) -> list[dict[str, Any]]:
        """Earlier decisions on the same tool, newest first (same arguments marked)."""
        rows = [r for r in self.store.audit_rows() if r["server"] == held.server and r["tool"] == held.tool
                and r["decision"] in ("approved", "denied", "timeout") and r.get("held_id") != held.id]
        rows = rows[-limit:][::-1]
        mine = canonical_json(dict(held.arguments))
        return [{"time": r["time"], "decision": r["decision"], "by": r["decided_by"], "reason": r["reason"],
                 "same_arguments": r["arguments"] == mine} for r in rows]

    def stats(self) -> list[dict[str, Any]]:
        """Per tool: how often held, approved, denied — and a suggestion when it is always approved."""
        counts: dict[str, dict[str, int]] = {}
        for row in self.store.audit_rows():
            key = f"{row['server']}.{row['tool']}"
            c = counts.setdefault(key, {"held": 0, "approved": 0, "denied": 0, "timeout": 0, "allowed": 0})
            if row["decision"] in c:
                c[row["decision"]] += 1
        out = []
        for tool, c in sorted(counts.items()):
            suggestion = None
            if c["approved"] >= 3 and c["denied"] == 0 and c["timeout"] == 0:
                suggestion = f'always approved ({c["approved"]}×): consider `- tool: "{tool}"\\n  decision: allow`'
            out.append({"tool": tool, **c, "suggestion": suggestion})
        return out


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
    guard = ui.guard

    def refuse(status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    async def gatekeeper(request: Request) -> Response | None:
        """Host header, then token (query once → cookie), for every route."""
        problem = guard.host_refusal(request.headers.get("host"))
        if problem:
            return PlainTextResponse(problem, status_code=421)
        if guard.token_ok(request.cookies.get(COOKIE)):
            return None
        return refuse(401, "missing or wrong token: open the URL that `signoff ui` printed")

    async def guarded_post(request: Request, *, totp: bool = False) -> tuple[dict[str, Any] | None, Response | None]:
        refusal = await gatekeeper(request)
        if refusal:
            return None, refusal
        problem = guard.origin_refusal(request.headers.get("origin"), request.headers.get("referer"))
        if problem:
            return None, refuse(403, problem)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, refuse(400, "the request body must be JSON")
        if not isinstance(body, dict) or not guard.use_csrf(request.headers.get("x-csrf-token") or body.get("csrf")):
            return None, refuse(403, "missing, used or expired CSRF token: reload the page")
        if totp and not guard.totp_ok(str(body.get("totp") or "")):
            return None, refuse(403, "wrong or reused TOTP code")
        return body, None

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
        refusal = await gatekeeper(request)
        if refusal:
            return refusal
        html = STATIC.joinpath("index.html").read_text(encoding="utf-8")
        html = html.replace("{{csrf}}", guard.new_csrf()).replace("{{totp}}", "1" if guard.totp_required else "")
        return HTMLResponse(html, headers={
            "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:",
            "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})

    async def static(request: Request) -> Response:
        refusal = await gatekeeper(request)
        if refusal:
            return refusal
        name = request.path_params["name"]
        types = {"app.js": "text/javascript", "app.css": "text/css"}
        if name not in types:
            return PlainTextResponse("not found", status_code=404)
        return Response(STATIC.joinpath(name).read_text(encoding="utf-8"), media_type=types[name],
                        headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ reads

    async def api_queue(request: Request) -> Response:
        return await gatekeeper(request) or JSONResponse(await anyio.to_thread.run_sync(ui.queue))

    async def api_held(request: Request) -> Response:
        refusal = await gatekeeper(request)
        if refusal:
            return refusal
        try:
            held = await anyio.to_thread.run_sync(ui.broker.get, request.path_params["held_id"])
        except UnknownCallError as exc:
            return refuse(404, str(exc))
        return JSONResponse(await anyio.to_thread.run_sync(lambda: ui.held_view(held)))

    async def api_audit(request: Request) -> Response:
        refusal = await gatekeeper(request)
        if refusal:
            return refusal
        from signoff.audit import AuditLog

        q = request.query_params
        rows = await anyio.to_thread.run_sync(
            lambda: AuditLog(ui.store).query(tool=q.get("tool") or None, decision=q.get("decision") or None))
        return JSONResponse({"rows": rows[-500:][::-1]})

    async def api_stats(request: Request) -> Response:
        return await gatekeeper(request) or JSONResponse({"tools": await anyio.to_thread.run_sync(ui.stats)})

    async def api_policy(request: Request) -> Response:
        refusal = await gatekeeper(request)
        if refusal:
            return refusal
        if not ui.policy_path:
            return JSONResponse({"path": None, "text": None, "rules": []})
        text = Path(ui.policy_path).read_text(encoding="utf-8")
        return JSONResponse({"path": ui.policy_path, "text": text, "rules": policy_edit.rules(text, ui.policy_path)})

    async def events(request: Request) -> Response:
        refusal = await gatekeeper(request)
        if refusal:
            return refusal
        from sse_starlette.sse import EventSourceResponse

        async def stream() -> AsyncIterator[dict[str, str]]:
            token, last_sent = None, 0.0
            while True:
                current = await anyio.to_thread.run_sync(ui.store.change_token)
                now = time.monotonic()
                if current != token:
                    token, last_sent = current, now
                    yield {"event": "queue", "data": json.dumps(await anyio.to_thread.run_sync(ui.queue))}
                elif now - last_sent > HEARTBEAT:
                    last_sent = now
                    yield {"event": "ping", "data": "{}"}
                await anyio.sleep(EVENT_POLL)

        return EventSourceResponse(stream())

    # ------------------------------------------------------------------ changes (POST only)

    async def api_decide(request: Request) -> Response:
        body, refusal = await guarded_post(request, totp=True)
        if refusal:
            return refusal
        assert body is not None
        arguments = body.get("arguments")
        if arguments is not None:
            problem = await anyio.to_thread.run_sync(lambda: edited_arguments_problem(ui.broker, str(body.get("id")), arguments))
            if problem:
                return with_csrf({"error": problem}, 400)
        try:
            held = await anyio.to_thread.run_sync(lambda: ui.broker.decide(
                str(body.get("id")), bool(body.get("approve")), reason=(body.get("reason") or None), channel="web",
                arguments=arguments, remember=body.get("remember") or None))
        except UnknownCallError as exc:
            return with_csrf({"error": str(exc)}, 404)
        except AlreadyDecidedError as exc:
            return with_csrf({"error": str(exc)}, 409)
        except (DecisionError, StoreError) as exc:
            return with_csrf({"error": str(exc)}, 400)
        return with_csrf({"ok": True, "status": held.status})

    async def api_kill(request: Request) -> Response:
        body, refusal = await guarded_post(request)
        if refusal:
            return refusal
        assert body is not None
        if body.get("on", True):
            await anyio.to_thread.run_sync(lambda: ui.broker.kill(str(body.get("reason") or "stopped from the web page")))
        else:
            await anyio.to_thread.run_sync(ui.broker.resume)
        return with_csrf({"ok": True, "kill": (await anyio.to_thread.run_sync(ui.queue))["kill"]})

    async def api_policy_edit(request: Request) -> Response:
        body, refusal = await guarded_post(request, totp=True)
        if refusal:
            return refusal
        assert body is not None
        if not ui.policy_path:
            return with_csrf({"error": "no policy file: start `signoff ui --policy FILE`"}, 400)
        try:
            if body.get("remove") is not None:
                text = policy_edit.remove_rule(ui.policy_path, int(body["remove"]))
            else:
                text = policy_edit.add_rule(ui.policy_path, body.get("rule") or {})
        except (PolicyError, ValueError) as exc:
            return with_csrf({"error": str(exc)}, 400)
        return with_csrf({"ok": True, "text": text, "rules": policy_edit.rules(text, ui.policy_path)})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("signoff ui")

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
    ])
