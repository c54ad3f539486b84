"""The page's side of per-call review links (see links.py): `/r/<token>`.

GET shows a one-button page and spends nothing, because chat apps fetch links to preview them;
the person's tap POSTs (same origin), which spends the link once and sets a cookie scoped to
that one call, then opens the page on it.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from signoff.web import links
from signoff.web.middleware import CALL_COOKIE

LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>signoff: review {held_id}</title><link rel="stylesheet" href="/static/app.css"></head>
<body class="landing"><main>
<h1>signoff</h1>
<p>A tool call ({held_id}) is waiting for your decision.</p>
<form method="post"><button type="submit" class="approve">Open the call</button></form>
<p class="meta">This link works once and only for this call.</p>
</main></body></html>
"""


def _page(status: int, text: str) -> Response:
    return PlainTextResponse(text, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _check(request: Request, *, spend: bool) -> tuple[str, Response | None]:
    """The link's call, or the refusal: bad, expired or (to spend) already spent. The Host and
    (for the POST) same-origin checks ran in middleware.py."""
    ui = request.app.state.ui
    try:
        held_id, nonce, expires = links.check_review(ui.link_key, request.path_params["token"])
    except links.LinkProblem as exc:
        return "", _page(403, str(exc))
    if spend and not ui.spent.spend(nonce, expires):
        return "", _page(
            403,
            "this review link was already used: links work once. Open the page with its full URL, or ask for a new notification",
        )
    return held_id, None


async def landing(request: Request) -> Response:
    held_id, refusal = _check(request, spend=False)
    if refusal:
        return refusal
    return HTMLResponse(
        LANDING.format(held_id=escape(held_id)),
        headers={
            "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
            # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on the form's POST
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )


async def redeem(request: Request) -> Response:
    held_id, refusal = _check(request, spend=True)
    if refusal:
        return refusal
    response = Response(status_code=303, headers={"Location": f"/#{held_id}", "Cache-Control": "no-store"})
    # Lax, not Strict: the person arrives from a notification app (another site); the cookie
    # only reaches this one call, and every change still needs the same-origin + CSRF checks.
    response.set_cookie(
        CALL_COOKIE,
        links.call_cookie(request.app.state.ui.link_key, held_id),
        httponly=True,
        samesite="lax",
        max_age=int(links.CALL_SESSION_TTL),
        secure=request.url.scheme == "https",
    )
    return response


def routes() -> list[Route]:
    return [Route("/r/{token}", landing), Route("/r/{token}", redeem, methods=["POST"])]
