"""The page's endpoints: each reads what it needs (ui, guard) from `request.app.state` and who
is asking from `request.state.access`; the checks they share live in middleware.py."""

from __future__ import annotations

import socket
import time
from html import escape as html_escape
from importlib import resources
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from signoff.approvals.audit import DECISIONS
from signoff.approvals.broker import Broker
from signoff.errors import (
    AlreadyDecidedError,
    CallGoneError,
    DecisionError,
    PolicyError,
    StoreError,
    UnknownCallError,
    VoteRefusedError,
)
from signoff.web import dashboard, policy_edit
from signoff.web.dashboard import Filter
from signoff.web.middleware import active_team, owner_only, posted, refuse, with_csrf

DECISION_OPTIONS = "".join(f"<option>{html_escape(d)}</option>" for d in DECISIONS)
"""The History filter offers every decision the audit trail can hold (one list: audit.DECISIONS)."""
STATIC = resources.files("signoff.web").joinpath("static")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:;"
    " form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {"app.js": "text/javascript", "app.css": "text/css", "form.js": "text/javascript", "signin.js": "text/javascript"}


# ------------------------------------------------------------------ pages


async def index(request: Request) -> Response:
    access, guard = request.state.access, request.app.state.guard
    html = STATIC.joinpath("index.html").read_text(encoding="utf-8")
    team = active_team(request.app.state)
    html = (
        html.replace("{{csrf}}", guard.new_csrf())
        .replace("{{totp}}", "1" if guard.totp_required and not access.user else "")
        .replace("{{scope}}", html_escape(access.call or ""))
        .replace("{{user}}", html_escape(access.user or ""))
        .replace("{{team}}", "1" if team is not None else "")
        .replace("{{decision_options}}", DECISION_OPTIONS)
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC_TYPES:
        return PlainTextResponse("not found", status_code=404)
    return Response(
        STATIC.joinpath(name).read_text(encoding="utf-8"), media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-store"}
    )


async def healthz(request: Request) -> Response:
    return PlainTextResponse(f"signoff ui home={request.app.state.guard.home_id}")


# ------------------------------------------------------------------ reads


async def api_held(request: Request) -> Response:
    access, ui = request.state.access, request.app.state.ui
    held_id = request.path_params["held_id"]
    if not access.may_see(held_id):
        return refuse(403, "this review link opens another call")
    try:
        held = await anyio.to_thread.run_sync(ui.broker.get, held_id)
    except UnknownCallError as exc:
        return refuse(404, str(exc))
    return JSONResponse(await anyio.to_thread.run_sync(lambda: ui.held_view(held, access=access)))


def decided_by(row: dict[str, Any]) -> list[str]:
    """Who a row names: one person, or every approver of a call decided by votes (`user:a, user:b`)."""
    return str(row.get("decided_by") or "").split(", ")


@owner_only
async def api_audit(request: Request) -> Response:
    from signoff.approvals.audit import AuditLog

    store, q = request.app.state.ui.store, request.query_params
    by = q.get("by") or None  # one person's history (team mode): `user:alice`
    only = Filter.from_query(q)  # machine, agent, server: exact values (dashboard.py)
    rows = await anyio.to_thread.run_sync(
        lambda: AuditLog(store).query(tool=q.get("tool") or None, decision=q.get("decision") or None)
    )
    present = dashboard.facets(dashboard.row_values(r) for r in rows)
    present["by"] = sorted({who for r in rows for who in decided_by(r) if who})
    rows = [r for r in rows if (by is None or by in decided_by(r)) and only.keeps_row(r)]
    return JSONResponse({"rows": rows[-500:][::-1], "facets": present})


@owner_only
async def api_proxies(request: Request) -> Response:
    """The proxies connected to this store: machine, agent, servers, policy, and whether they run."""
    now = time.time()
    listed = await anyio.to_thread.run_sync(lambda: dashboard.proxies(request.app.state.ui.store, now))
    return JSONResponse({"proxies": listed, "now": now, "host": socket.gethostname()})


@owner_only
async def api_stats(request: Request) -> Response:
    return JSONResponse({"tools": await anyio.to_thread.run_sync(request.app.state.ui.stats)})


@owner_only
async def api_policy(request: Request) -> Response:
    return JSONResponse(await anyio.to_thread.run_sync(request.app.state.ui.policy_view))


# ------------------------------------------------------------------ changes (POST only)


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


def team_refusal(request: Request, held_id: str, action: str = "decide") -> str | None:
    """Team mode: why this person may not decide this call (roles) or do this action, or None."""
    team = active_team(request.app.state)
    if team is None:
        return None
    access = request.state.access
    if action != "decide":
        return team.action_refusal(access, action)
    held = request.app.state.ui.store.get_held(held_id)
    if held is not None and not held.requirements.default and access.user:
        return None  # decided by votes: the store judges the person's roles and audits a refusal
    return None if held is None else team.decision_refusal(access, held)


@posted(totp=True)
async def api_decide(request: Request, body: dict[str, Any]) -> Response:
    access, ui, guard = request.state.access, request.app.state.ui, request.app.state.guard
    held_id = str(body.get("id"))
    if not access.may_see(held_id):
        return with_csrf(guard, {"error": "this review link opens another call"}, 403)
    refusal = await anyio.to_thread.run_sync(
        lambda: team_refusal(request, held_id) or (team_refusal(request, held_id, "remember") if body.get("remember") else None)
    )
    if refusal:
        return with_csrf(guard, {"error": refusal}, 403)
    arguments = body.get("arguments")
    if arguments is not None:
        problem = await anyio.to_thread.run_sync(lambda: edited_arguments_problem(ui.broker, held_id, arguments))
        if problem:
            return with_csrf(guard, {"error": problem}, 400)
    try:
        held = await anyio.to_thread.run_sync(
            lambda: ui.broker.decide(
                held_id,
                bool(body.get("approve")),
                reason=(body.get("reason") or None),
                channel="web",
                by=access.by,
                arguments=arguments,
                remember=(body.get("remember") or None) if access.full else None,
                person=access.user,
                roles=access.roles,
            )
        )
    except VoteRefusedError as exc:  # the wrong role, not_self, or this person already approved
        return with_csrf(guard, {"error": str(exc)}, 403)
    except UnknownCallError as exc:
        return with_csrf(guard, {"error": str(exc)}, 404)
    except CallGoneError:  # nobody waits for it: say so plainly, and how the page shows it
        gone = ui.gone_view(await anyio.to_thread.run_sync(ui.broker.get, held_id))
        return with_csrf(
            guard, {"error": f"{gone['line']}: {gone['reason']}" if gone["reason"] else gone["line"], "gone": gone}, 410
        )
    except AlreadyDecidedError as exc:
        return with_csrf(guard, {"error": str(exc)}, 409)
    except (DecisionError, StoreError) as exc:
        return with_csrf(guard, {"error": str(exc)}, 400)
    return with_csrf(
        guard,
        {
            "ok": True,
            "status": held.status,
            "id": held.id,
            "qualified": held.qualified,
            "decided_at": held.decided_at,
            "by": held.decided_by,
            "progress": held.progress_view(),
        },
    )


@posted(owner=True)
async def api_kill(request: Request, body: dict[str, Any]) -> Response:
    ui, by = request.app.state.ui, request.state.access.by
    refusal = await anyio.to_thread.run_sync(lambda: team_refusal(request, "", "kill"))
    if refusal:
        return with_csrf(request.app.state.guard, {"error": refusal}, 403)
    if body.get("on", True):
        await anyio.to_thread.run_sync(lambda: ui.broker.kill(str(body.get("reason") or "stopped from the web page"), by=by))
    else:
        await anyio.to_thread.run_sync(lambda: ui.broker.resume(by=by))
    return with_csrf(request.app.state.guard, {"ok": True, "kill": (await anyio.to_thread.run_sync(ui.queue))["kill"]})


@posted(totp=True, owner=True)
async def api_policy_edit(request: Request, body: dict[str, Any]) -> Response:
    ui, guard = request.app.state.ui, request.app.state.guard
    refusal = await anyio.to_thread.run_sync(lambda: team_refusal(request, "", "policy"))
    if refusal:
        return with_csrf(guard, {"error": refusal}, 403)
    if not ui.policy_path:
        return with_csrf(guard, {"error": "no policy file: start `signoff ui --policy FILE`"}, 400)
    try:
        if body.get("remove") is not None:
            text = policy_edit.remove_rule(ui.policy_path, int(body["remove"]))
        else:
            text = policy_edit.add_rule(ui.policy_path, body.get("rule") or {})
    except (PolicyError, ValueError) as exc:
        return with_csrf(guard, {"error": policy_edit.plain_error(str(exc))}, 400)
    return with_csrf(guard, {"ok": True, "text": text, "rules": policy_edit.rules(text, ui.policy_path)})
