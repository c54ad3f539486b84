"""The page's locks as ASGI layers, applied to every request before any endpoint runs.

Outermost first: `HostCheck` (the Host header must name this server, so a DNS-rebinding page
cannot reach it), `Identify` (who is asking: the master token, a review link's call cookie, or in
team mode a signed-in person; nobody → 401), `SameOrigin` (a state change must come from this
page). Posts that change something are wrapped by `posted` (JSON body, single-use CSRF token,
TOTP when asked). Every layer reads the page's state from `scope["app"].state` (ui, guard).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from signoff.web import links
from signoff.web.security import COOKIE

CALL_COOKIE = "signoff_call"
NO_STORE = {"Cache-Control": "no-store"}
OPEN_PATHS = ("/healthz",)
"""Answered without any check (a page on another port asks whose page this is)."""
TOKEN_MAX_AGE = 30 * 24 * 3600
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Access:
    """Who is asking: the page's owner (call is None), a review link's holder for one call, or
    (team mode) a signed-in person, named in `user` with their `roles`."""

    call: str | None = None
    user: str | None = None
    roles: tuple[str, ...] = ()
    session: str | None = None
    """Team mode: the id of the person's session (sign-out ends it)."""

    @property
    def full(self) -> bool:
        return self.call is None

    def may_see(self, held_id: str) -> bool:
        return self.call is None or self.call == held_id

    @property
    def by(self) -> str | None:
        """How decisions name the decider (`user:alice`), or None for the owner (the OS user)."""
        return f"user:{self.user}" if self.user else None


def refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _state(scope: Scope) -> Any:
    return scope["app"].state


def active_team(state: Any) -> Any:
    """The page's team mode (web/team.py) if it is on: `--team`, or once any person exists."""
    team = getattr(state, "team", None)
    return team if team is not None and team.active() else None


def _is_page(path: str) -> bool:
    """Paths that answer people's browsers with text, not the page's JSON API."""
    return path.startswith("/r/")


class Forwarded:
    """Behind a reverse proxy that terminates TLS: X-Forwarded-For/-Proto/-Host are believed only
    from the `--trusted-proxy` addresses; from anyone else they are ignored (left as they are,
    never used), so HostCheck and SameOrigin judge the real request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        trusted = _state(scope).guard.trusted_proxies if scope["type"] == "http" else ()
        client = scope.get("client")
        if trusted and client and _in(client[0], trusted):
            scope = forwarded_scope(scope, trusted)
        await self.app(scope, receive, send)


def _in(address: str, networks: Any) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def forwarded_scope(scope: Scope, trusted: Any) -> Scope:
    """The request as the trusted proxy received it: its client, scheme and Host."""
    headers = Headers(scope=scope)
    scope = dict(scope)
    proto = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
    if proto in ("http", "https"):
        scope["scheme"] = proto
    hops = [h.strip() for h in (headers.get("x-forwarded-for") or "").split(",") if h.strip()]
    while hops and _in(hops[-1], trusted):  # the nearest hop no trusted proxy vouches for
        hops.pop()
    if hops:
        scope["client"] = (hops[-1][:64], 0)
    host = (headers.get("x-forwarded-host") or "").split(",")[0].strip()
    if host:
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", host.encode("latin-1"))]
    return scope


class HostCheck:
    """421 for a request whose Host header does not name this page (after trusted forwarding)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            problem = _state(scope).guard.host_refusal(Headers(scope=scope).get("host"))
            if problem:
                await PlainTextResponse(problem, status_code=421, headers=NO_STORE)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Identify:
    """Sets `request.state.access`, or refuses. `/?token=` trades the URL's token for a cookie."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or _is_page(scope["path"]):
            await self.app(scope, receive, send)
            return
        state = _state(scope)
        team = await anyio.to_thread.run_sync(active_team, state) if state.team is not None else None
        token = QueryParams(scope.get("query_string", b"").decode("latin-1")).get("token")
        if scope["path"] == "/" and token is not None and team is None:
            await self.trade_token(state.guard, token)(scope, receive, send)
            return
        request = Request(scope)
        if team is not None:
            access = await anyio.to_thread.run_sync(team.access, request)
        else:
            access = self.token_access(state, request)
        if access is None and not anonymous(team, scope["path"]):
            await self.nobody(team, scope)(scope, receive, send)
            return
        scope.setdefault("state", {})["access"] = access
        await self.app(scope, receive, send)

    @staticmethod
    def trade_token(guard: Any, token: str) -> Response:
        if not guard.token_ok(token):
            return refuse(401, "wrong token")
        response = Response(status_code=303, headers={"Location": "/"})  # drop the token from the URL
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=TOKEN_MAX_AGE, secure=guard.secure)
        return response

    @staticmethod
    def token_access(state: Any, request: Request) -> Access | None:
        """The master token's cookie, or a call-scoped cookie from a review link."""
        if state.guard.token_ok(request.cookies.get(COOKIE)):
            return Access()
        call = links.cookie_call(state.ui.link_key, request.cookies.get(CALL_COOKIE))
        return None if call is None else Access(call)

    @staticmethod
    def nobody(team: Any, scope: Scope) -> Response:
        if team is not None:
            return team.sign_in_needed(scope)
        return refuse(401, "missing or wrong token: open the URL that `signoff ui` printed")


def anonymous(team: Any, path: str) -> bool:
    """Paths served to a visitor nobody identified: the landing/sign-in pages' style (and sign-in)."""
    return path == "/static/app.css" or (team is not None and team.is_open(path))


class SameOrigin:
    """A state change (any method but GET/HEAD/OPTIONS) must carry this page's own Origin or Referer."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            problem = _state(scope).guard.origin_refusal(headers.get("origin"), headers.get("referer"))
            if problem:
                response = (
                    PlainTextResponse(problem, status_code=403, headers=NO_STORE)
                    if _is_page(scope["path"])
                    else refuse(403, problem)
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def with_csrf(guard: Any, payload: dict[str, Any], status: int = 200) -> JSONResponse:
    """An answer to a post carries the next single-use CSRF token."""
    return JSONResponse({**payload, "csrf": guard.new_csrf()}, status_code=status)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


async def _checked_body(request: Request, totp: bool) -> tuple[dict[str, Any] | None, Response | None]:
    """The post's JSON body once its CSRF token (and TOTP code, when asked) passed."""
    guard = request.app.state.guard
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, refuse(400, "the request body must be JSON")
    if not isinstance(body, dict) or not guard.use_csrf(request.headers.get("x-csrf-token") or body.get("csrf")):
        return None, refuse(403, "missing, used or expired CSRF token: reload the page")
    if totp:
        access = request.state.access
        if access is not None and access.user:  # a person's own second factor was
            return body, None  # checked at sign-in; the shared page TOTP is for the single-user page
        problem, wait = guard.totp_refusal(str(body.get("totp") or ""), client_of(request))
        if problem and wait:
            return None, JSONResponse({"error": problem}, status_code=429, headers={"Retry-After": str(math.ceil(wait))})
        if problem:
            return None, refuse(403, problem)
    return body, None


def posted(*, totp: bool = False, owner: bool = False) -> Callable[[Callable[..., Awaitable[Response]]], Endpoint]:
    """A POST endpoint `f(request, body)`: JSON body, single-use CSRF token, the page's TOTP code
    if `totp`; `owner`: refused to a review link's holder (it opens one call only)."""

    def wrap(endpoint: Callable[..., Awaitable[Response]]) -> Endpoint:
        @functools.wraps(endpoint)
        async def handler(request: Request) -> Response:
            body, refusal = await _checked_body(request, totp)
            if refusal:
                return refusal
            if owner and not request.state.access.full:
                return with_csrf(request.app.state.guard, {"error": "this review link opens one call only"}, 403)
            return await endpoint(request, body)

        return handler

    return wrap


def owner_only(endpoint: Endpoint) -> Endpoint:
    """A read only the page's owner may make (history, statistics, policy)."""

    @functools.wraps(endpoint)
    async def handler(request: Request) -> Response:
        if not request.state.access.full:
            return refuse(403, "this review link opens one call only; open the page's own URL for the rest")
        return await endpoint(request)

    return handler
