"""Team mode on the page: people sign in (name + password + TOTP code, or a passkey) and get a
session cookie; each decision names the person and needs their role; the page shows who else is
looking at a held call.

Sessions live in this process (a restart signs everyone out) and end after `IDLE` seconds without
a request or `LONGEST` after sign-in; the person is read from the store on every request, so
`signoff user remove` ends their sessions at once and role changes apply at once. The cookie is
HttpOnly, SameSite=Strict, and Secure when the page's public URL is https. Sign-in posts pass the
same Host and same-origin checks as every post, plus a CSRF token.
"""

from __future__ import annotations

import secrets
import threading
import time
from html import escape
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from signoff.team.factors import SignIn, Verdict
from signoff.team.users import ADMIN, APPROVER, People, approval_of, eligible
from signoff.web.middleware import NO_STORE, Access, client_of, refuse
from signoff.web.security import Guard

SESSION_COOKIE = "signoff_session"
IDLE = 15 * 60.0
"""A session unused this long is signed out."""
LONGEST = 12 * 3600.0
PRESENCE = 20.0
"""A person counts as looking at a call while their page asked about it this recently."""
MAX_SESSIONS = 4096
BACKGROUND = ("/api/presence", "/events", "/api/proxies")
"""Requests an open page makes by itself: they do not keep a session from idling out."""
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; form-action 'self';"
    " frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    **NO_STORE,
}
SIGN_IN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf" content="{csrf}"><meta name="enrol" content="{enrol}">
<title>signoff: {title}</title><link rel="stylesheet" href="/static/app.css">
<script src="/static/signin.js" defer></script></head>
<body class="landing signin"><main>
<h1>signoff</h1>
<p id="signin-message" role="alert" hidden></p>
{body}
</main></body></html>
"""
SIGN_IN_FORM = """<form id="signin">
<label>Name <input name="name" autocomplete="username webauthn" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label>TOTP code <input name="totp" inputmode="numeric" autocomplete="one-time-code" size="8"></label>
<button type="submit" class="approve">Sign in</button>
</form>
<p><button type="button" id="passkey">Sign in with a passkey</button></p>"""
ENROL_FORM = """<p>Add a passkey for <strong>{name}</strong> on this device.</p>
<p><button type="button" id="enrol" class="approve">Add a passkey</button></p>
<p class="meta">This link works once. Afterwards, sign in with the passkey.</p>"""


class Sessions:
    """Signed-in people of this page process: session id → (name, started, last request)."""

    def __init__(self, clock: Any = time.monotonic):
        self.clock = clock
        self._sessions: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def start(self, name: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._drop_idle(now)
            self._sessions[sid] = [name, now, now]
        return sid

    def _drop_idle(self, now: float) -> None:
        for sid in [s for s, (_, started, last) in self._sessions.items() if now - last > IDLE or now - started > LONGEST]:
            del self._sessions[sid]

    def touch(self, sid: str | None, *, refresh: bool = True) -> str | None:
        """The session's person, or None if unknown or timed out. `refresh`: the request was the
        person's doing (the page's own background polls and its event stream are not)."""
        if not sid:
            return None
        now = self.clock()
        with self._lock:
            entry = self._sessions.get(sid)
            if entry is None:
                return None
            if now - entry[2] > IDLE or now - entry[1] > LONGEST:
                del self._sessions[sid]
                return None
            if refresh:
                entry[2] = now
            return entry[0]

    def alive(self, sid: str | None) -> bool:
        return self.touch(sid, refresh=False) is not None

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)


class Presence:
    """Who looked at which held call lately (from their pages' requests)."""

    def __init__(self, clock: Any = time.monotonic):
        self.clock = clock
        self._seen: dict[str, dict[str, float]] = {}  # held id -> person -> when
        self._lock = threading.Lock()

    def saw(self, name: str, held_ids: list[str]) -> None:
        now = self.clock()
        with self._lock:
            for held_id in held_ids[:200]:
                self._seen.setdefault(held_id[:64], {})[name] = now

    def viewers(self, held_ids: list[str]) -> dict[str, list[str]]:
        now = self.clock()
        with self._lock:
            for held_id in list(self._seen):
                fresh = {n: t for n, t in self._seen[held_id].items() if now - t <= PRESENCE}
                if fresh:
                    self._seen[held_id] = fresh
                else:
                    del self._seen[held_id]
            return {h: sorted(self._seen.get(h, {})) for h in held_ids}


class TeamPage:
    """What `create_app(ui, team=...)` asks of team mode (see middleware.Identify)."""

    def __init__(self, people: People, guard: Guard, *, forced: bool = False, clock: Any = time.monotonic):
        self.people = people
        self.forced = forced
        self._any: tuple[float, bool] = (-1e9, False)
        self.guard = guard
        self.sign_in = SignIn(people)
        self.sessions = Sessions(clock)
        self.presence = Presence(clock)
        self.secure = guard.secure

    def active(self) -> bool:
        """On with `--team`, or as soon as one person exists (checked at most once a second)."""
        if self.forced:
            return True
        now = time.monotonic()
        if now - self._any[0] > 1.0:
            self._any = (now, self.people.any())
        return self._any[1]

    # ------------------------------------------------------------------ for the middleware

    def is_open(self, path: str) -> bool:
        """Served to someone not signed in: the sign-in and enrolment pages and their calls."""
        return path in ("/signin", "/signin/passkey", "/static/signin.js") or path.startswith("/enrol/")

    def access(self, request: Request) -> Access | None:
        sid = request.cookies.get(SESSION_COOKIE)
        name = self.sessions.touch(sid, refresh=request.url.path not in BACKGROUND)
        person = self.people.get(name) if name else None
        if person is None:  # removed since: the session ends with them
            if name:
                self.sessions.end(sid)
            return None
        return Access(user=person.name, roles=person.roles, session=sid)

    def sign_in_needed(self, scope: Scope) -> Response:
        if scope["path"] == "/" and scope["method"] == "GET":  # a bookmarked view (`/?agent=…`) opens after sign-in
            view = [
                (k, v)
                for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                if k != "token"
            ]  # the single-user token is never carried along
            target = f"/signin?next={quote('/?' + urlencode(view), safe='')}" if view else "/signin"
            return RedirectResponse(target, status_code=303, headers=NO_STORE)
        return refuse(401, "sign in first: open the page and sign in with your name")

    def still_signed_in(self, access: Access) -> bool:
        """For a long request (the event stream): the session is alive and its person exists."""
        return self.sessions.alive(access.session) and self.people.get(access.user or "") is not None

    # ------------------------------------------------------------------ roles

    def decision_refusal(self, access: Access, held: Any) -> str | None:
        """Why this person may not decide this held call (their roles against its rules'), or None."""
        if not access.user:
            return "sign in to decide"
        return eligible(access.roles, approval_of(held))

    def action_refusal(self, access: Access, action: str) -> str | None:
        """The kill switch needs an approver (or admin); policy edits and remembered approvals
        (which let later calls through without anyone's role being checked) need an admin."""
        wanted = (ADMIN,) if action in ("policy", "remember") else (APPROVER, ADMIN)
        if access.user and not set(wanted) & set(access.roles):
            return f"only people with the role {' or '.join(repr(w) for w in wanted)} may do this"
        return None

    def routes(self) -> list[Route]:
        return [
            Route("/signin", signin_page),
            Route("/signin", signin_password, methods=["POST"]),
            Route("/signin/passkey", passkey_options),
            Route("/signin/passkey", signin_passkey, methods=["POST"]),
            Route("/signout", signout, methods=["POST"]),
            Route("/api/presence", api_presence),
            Route("/enrol/{token}", enrol_page),
            Route("/enrol/{token}", enrol, methods=["POST"]),
        ]

    def signed_in(self, verdict: Verdict, request: Request) -> Response:
        if verdict.person is None:
            headers = {"Retry-After": str(int(verdict.wait) + 1)} if verdict.wait else None
            return JSONResponse(
                {"error": verdict.problem, "csrf": self.guard.new_csrf()},
                status_code=429 if verdict.wait else 401,
                headers=headers,
            )
        sid = self.sessions.start(verdict.person.name)
        response = JSONResponse({"ok": True, "name": verdict.person.name, "next": "/"})
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", secure=self.secure, max_age=int(LONGEST))
        return response


def _team(request: Request) -> TeamPage:
    return request.app.state.team


def _origin(request: Request) -> tuple[str, str]:
    """(rp_id, origin) for WebAuthn: the request's own origin, which SameOrigin already checked."""
    origin = request.headers.get("origin") or ""
    return (urlsplit(origin).hostname or ""), origin


async def _json(request: Request) -> dict[str, Any] | None:
    """The post's JSON object if its single-use CSRF token is right, else None."""
    try:
        body = await request.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not request.app.state.guard.use_csrf(request.headers.get("x-csrf-token")):
        return None
    return body


def _csrf_refusal(request: Request) -> Response:
    return JSONResponse(
        {"error": "missing, used or expired CSRF token: reload the page", "csrf": request.app.state.guard.new_csrf()},
        status_code=403,
    )


async def signin_page(request: Request) -> Response:
    if request.state.access is not None:
        return RedirectResponse("/", status_code=303, headers=NO_STORE)
    html = SIGN_IN_PAGE.format(csrf=request.app.state.guard.new_csrf(), enrol="", title="sign in", body=SIGN_IN_FORM)
    return HTMLResponse(html, headers=HEADERS)


async def signin_password(request: Request) -> Response:
    body = await _json(request)
    if body is None:
        return _csrf_refusal(request)
    team = _team(request)
    verdict = await anyio.to_thread.run_sync(
        lambda: team.sign_in.with_password(
            str(body.get("name") or "")[:64],
            str(body.get("password") or "")[:1024],
            str(body.get("totp") or ""),
            client_of(request),
        )
    )
    return team.signed_in(verdict, request)


async def passkey_options(request: Request) -> Response:
    rp_id = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
    return Response(_team(request).sign_in.authentication_options(rp_id), media_type="application/json", headers=NO_STORE)


async def signin_passkey(request: Request) -> Response:
    body = await _json(request)
    if body is None or not isinstance(body.get("credential"), dict):
        return _csrf_refusal(request)
    team = _team(request)
    rp_id, origin = _origin(request)
    verdict = await anyio.to_thread.run_sync(
        lambda: team.sign_in.with_passkey(body["credential"], rp_id, origin, client_of(request))
    )
    return team.signed_in(verdict, request)


async def signout(request: Request) -> Response:
    _team(request).sessions.end(request.cookies.get(SESSION_COOKIE))
    response = JSONResponse({"ok": True, "next": "/signin"})
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response


async def api_presence(request: Request) -> Response:
    """Notes that this person looks at the listed held calls; answers who else does."""
    team, access = _team(request), request.state.access
    ids = [i for i in (request.query_params.get("ids") or "").split(",") if i][:200]
    if access is not None and access.user:
        team.presence.saw(access.user, ids)
    viewers = team.presence.viewers(ids)
    return JSONResponse({"me": access.user if access else None, "viewers": viewers})


async def enrol_page(request: Request) -> Response:
    """The passkey enrolment page a `signoff user passkey NAME` link opens (GET spends nothing)."""
    person = await anyio.to_thread.run_sync(lambda: _team(request).people.enrolment(request.path_params["token"]))
    if person is None:
        return refuse(403, "this enrolment link is unknown, used or expired: ask for a new one (`signoff user passkey NAME`)")
    html = SIGN_IN_PAGE.format(
        csrf=request.app.state.guard.new_csrf(),
        enrol="1",
        title="add a passkey",
        body=ENROL_FORM.format(name=escape(person.name)),
    )
    return HTMLResponse(html, headers=HEADERS)


async def enrol(request: Request) -> Response:
    """Step 1 (no credential): the creation options; step 2: the new passkey, which spends the link."""
    body = await _json(request)
    if body is None:
        return _csrf_refusal(request)
    team, token = _team(request), request.path_params["token"]
    rp_id, origin = _origin(request)
    credential = body.get("credential")
    person = await anyio.to_thread.run_sync(lambda: team.people.enrolment(token, spend=credential is not None))
    if person is None:
        return refuse(403, "this enrolment link is unknown, used or expired")
    if credential is None:
        return Response(
            team.sign_in.registration_options(person, rp_id),
            media_type="application/json",
            headers={**NO_STORE, "X-CSRF-Token": team.guard.new_csrf()},
        )
    problem = await anyio.to_thread.run_sync(
        lambda: team.sign_in.register(person, credential if isinstance(credential, dict) else {}, rp_id, origin)
    )
    if problem:
        return refuse(400, problem)
    return JSONResponse({"ok": True, "next": "/signin"})
