"""`signoff ui`: the page a person keeps open while agents work.

One Starlette app over the shared store: a live queue of held calls from every proxy on the
machine (pushed with server-sent events, only when the queue changes), decisions, the audit
history, per-tool statistics that suggest rules to relax, the policy in force, and the kill
switch. The page itself is static HTML/CSS/JS (no build step) that renders every value with
`textContent`, never as HTML.

Visitors: the owner of the master token sees everything; a person who followed a notification's
review link (web/review.py) holds a cookie for ONE held call and may only view and decide that
call; in team mode (web/team.py) only signed-in people, each deciding under their own name and
roles. This module keeps the state (UI) and the live queue; the checks every request passes are
in middleware.py, the other endpoints in endpoints.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from signoff.approvals.broker import Broker, compact_arguments
from signoff.approvals.present import for_held
from signoff.approvals.store import GONE_WORDS, gone_line
from signoff.model import canonical_json
from signoff.policy import risk
from signoff.redact import redact_held
from signoff.web import dashboard, endpoints, links, policy_edit, review
from signoff.web.dashboard import Filter
from signoff.web.middleware import CALL_COOKIE, Access, Forwarded, HostCheck, Identify, SameOrigin, active_team
from signoff.web.security import Guard

__all__ = ["UI", "Access", "create_app", "CALL_COOKIE"]
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
PROXY_FACETS = 5.0
"""The queue's filter choices from the running proxies are this many seconds old at most."""
LIVENESS_CHECK = 1.0
"""While waiting calls are on the page, their proxies' leases are checked this often (a kill -9
writes nothing to the store, so no change would otherwise tell the page)."""


class UI:
    """State shared by the routes: the broker (and its store), the guard, the policy file."""

    def __init__(self, broker: Broker, guard: Guard, *, policy_path: str | None = None):
        self.broker = broker
        self.store = broker.store
        self.guard = guard
        self.policy_path = policy_path
        self.link_key = links.link_key()
        self.spent = links.SpentLinks()
        self._proxy_facets: tuple[float, dict[str, list[str]]] | None = None

    # ------------------------------------------------------------------ views of the store (reads never write)

    def queue(self, access: Access = Access(), only: Filter = Filter()) -> dict[str, Any]:
        """The calls waiting (and recently gone) that this visitor may see, narrowed by `only`;
        `facets`: the machines, agents and servers present, for the page's filter."""
        visible = [h for h in self.broker.pending() if access.may_see(h.id)]
        pending = [h for h in visible if only.keeps_held(h)]
        kill = self.broker.kill_state()
        now = time.time()
        present = dashboard.facets(dashboard.held_values(h) for h in visible)
        if access.full:
            present = dashboard.merge(present, self.proxy_facets(now))
        out: dict[str, Any] = {
            "pending": [self.held_view(h, brief=True) for h in pending],
            "kill": {"on": kill.on, "reason": kill.reason, "by": kill.by, "at": kill.at},
            "now": now,
            "scope": access.call,
            "gone": [
                gone_view(h) for h in self.store.recently_gone(now - GONE_SECONDS) if access.may_see(h.id) and only.keeps_held(h)
            ],
            "facets": present,
            "filter": only.as_dict(),
            "hidden": len(visible) - len(pending),
        }
        if access.call and not pending:  # the one call this visitor may see is no longer waiting
            held = self.store.get_held(access.call)
            out["scoped_outcome"] = (
                None
                if held is None
                else {
                    "id": held.id,
                    "qualified": held.qualified,
                    "status": held.status,
                    "by": held.decided_by,
                    "channel": held.channel,
                    "reason": held.decision_reason,
                }
            )
        return out

    def proxy_facets(self, now: float) -> dict[str, list[str]]:
        """The running proxies' machines, agents and servers, re-read at most every PROXY_FACETS
        seconds (checking each proxy's liveness may ask the store once per proxy)."""
        if self._proxy_facets is None or now >= self._proxy_facets[0]:
            self._proxy_facets = (now + PROXY_FACETS, dashboard.proxy_facets(dashboard.proxies(self.store, now)))
        return self._proxy_facets[1]

    def queue_signature(self, access: Access = Access()) -> str:
        return self.store.queue_signature() + (access.call or "")

    def held_view(self, held: Any, *, brief: bool = False, access: Access = Access()) -> dict[str, Any]:
        """One held call as the page shows it. (Argument redaction belongs right here.)"""
        view = redact_held(held.as_dict())  # secrets never reach the page (the tool still gets them)
        level, why = risk.assess(held.rule, held.annotations, held.arguments, actions=getattr(held, "actions", None) or ())
        view.update(
            qualified=held.qualified,
            risk=level,
            risk_why=why,
            who=held.who,
            needs="" if held.requirements.default else held.requirements.describe(),
        )
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
        return [
            {
                "time": r["time"],
                "decision": r["decision"],
                "by": r["decided_by"],
                "reason": r["reason"],
                "same_arguments": r["arguments"] == mine,
            }
            for r in rows
        ]

    def stats(self) -> list[dict[str, Any]]:
        """Per tool: how often held, approved, denied — and a suggestion when it is always approved."""
        counts: dict[str, dict[str, int]] = {}
        for server, tool, decision, rows in self.store.audit_counts():
            c = counts.setdefault(f"{server}.{tool}", {"held": 0, "approved": 0, "denied": 0, "timeout": 0, "allowed": 0})
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

    def gone_view(self, held: Any) -> dict[str, Any]:
        return gone_view(held)


def gone_view(held: Any) -> dict[str, Any]:
    """A call nobody waits for any more, as the page greys it: what, why in plain words, until when."""
    return {
        "id": held.id,
        "qualified": held.qualified,
        "status": held.status,
        "words": GONE_WORDS.get(held.status, held.status),
        "line": gone_line(held),
        "reason": held.decision_reason or "",
        "until": (held.decided_at or time.time()) + GONE_SECONDS,
    }


# ------------------------------------------------------------------ the live queue (reads)


async def api_queue(request: Request) -> Response:
    ui, only = request.app.state.ui, Filter.from_query(request.query_params)
    return JSONResponse(await anyio.to_thread.run_sync(ui.queue, request.state.access, only))


async def events(request: Request) -> Response:
    """The queue, pushed when it changes: the store's change counter is polled (cheap), the
    queue's signature read only when it moved, and the queue itself sent only when that differs."""
    from sse_starlette.sse import EventSourceResponse

    access, team = request.state.access, active_team(request.app.state)
    alive = (lambda: team.still_signed_in(access)) if team is not None and access.user else None
    only = Filter.from_query(request.query_params)
    return EventSourceResponse(_queue_stream(request.app.state.ui, access, alive, only), ping=int(HEARTBEAT))


async def _queue_stream(
    ui: UI, access: Access, alive: Callable[[], bool] | None = None, only: Filter = Filter()
) -> AsyncIterator[dict[str, str]]:
    """`alive` (team mode): checked every LIVENESS_CHECK; the stream ends when the person's
    session did (signed out, idle, or removed). `only`: the page's filter (dashboard.py)."""
    token: int | None = None
    next_alive = 0.0
    signature: str | None = None
    next_deadline = 0.0
    quiet_until = 0.0  # a model flooding the queue cannot make the page stream without pause
    next_check = 0.0
    waiting = False  # the last queue pushed had calls a proxy waits on
    while True:
        if alive is not None and time.monotonic() >= next_alive:
            next_alive = time.monotonic() + LIVENESS_CHECK
            if not await anyio.to_thread.run_sync(alive):
                return
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
                queue = await anyio.to_thread.run_sync(ui.queue, access, only)
                signature = await anyio.to_thread.run_sync(ui.queue_signature, access)
                retry = [h["deadline"] for h in queue["pending"] if h.get("hold_mode") == "retry"]
                next_deadline = min(retry) if retry else 0.0
                waiting = bool(queue["hidden"]) or any(h.get("hold_mode") == "wait" for h in queue["pending"])
                data = json.dumps(queue)
                quiet_until = time.monotonic() + len(data) / PUSH_BYTES_PER_SECOND
                yield {"event": "queue", "data": data}
        await anyio.sleep(EVENT_POLL)


def create_app(ui: UI, team: Any = None) -> Starlette:
    """The page: routes, behind the Host, identity and same-origin layers (middleware.py).
    `team`: team mode (web/team.py): people sign in; None: the master token opens the page."""
    e = endpoints
    app = Starlette(
        routes=[
            Route("/", e.index),
            Route("/static/{name}", e.static),
            Route("/healthz", e.healthz),
            Route("/events", events),
            Route("/api/queue", api_queue),
            Route("/api/held/{held_id}", e.api_held),
            Route("/api/audit", e.api_audit),
            Route("/api/stats", e.api_stats),
            Route("/api/policy", e.api_policy),
            Route("/api/proxies", e.api_proxies),
            Route("/api/decide", e.api_decide, methods=["POST"]),
            Route("/api/kill", e.api_kill, methods=["POST"]),
            Route("/api/policy", e.api_policy_edit, methods=["POST"]),
            *review.routes(),
            *(team.routes() if team is not None else ()),
        ],
        middleware=[Middleware(Forwarded), Middleware(HostCheck), Middleware(Identify), Middleware(SameOrigin)],
    )
    app.state.ui = ui
    app.state.guard = ui.guard
    app.state.team = team
    return app
