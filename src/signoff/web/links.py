"""Per-call review links: what a notification carries instead of the page's master token.

A link names one held call, expires after LINK_TTL, and can be spent once; spending it gives
the browser a cookie scoped to that call alone (view and decide it, nothing else). Links are
HMAC-signed with a key kept in SIGNOFF_HOME (0600), so the proxy that notifies and the page
that redeems agree without talking to each other. Spent links are remembered in a small file
beside the key, so a restarted page does not accept a link twice. No web framework here: the
proxy imports this module to build links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path

from signoff import paths

LINK_TTL = 900.0
"""A review link is good for 15 minutes, and once."""
CALL_SESSION_TTL = 1800.0
"""The call-scoped session a link opens lasts 30 minutes (the call is usually decided long before)."""
KEY_FILE = "ui-link-key"
SPENT_FILE = "ui-links-spent"


def link_key() -> bytes:
    from signoff.web.security import load_secret

    secret = load_secret(KEY_FILE)
    assert secret is not None
    return secret.encode()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def _mac(key: bytes, purpose: str, payload: str) -> str:
    return hmac.new(key, f"{purpose}\n{payload}".encode(), hashlib.sha256).hexdigest()[:40]


def _sign(key: bytes, purpose: str, fields: list[str]) -> str:
    payload = "|".join(fields)
    return f"{_b64(payload)}.{_mac(key, purpose, payload)}"


def _verify(key: bytes, purpose: str, token: str | None) -> list[str] | None:
    """The signed fields, or None if the token is malformed or not signed with `key` for `purpose`."""
    if not token or token.count(".") != 1 or len(token) > 512:
        return None
    encoded, mac = token.split(".")
    try:
        payload = _unb64(encoded)
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac, _mac(key, purpose, payload)):
        return None
    return payload.split("|")


def review_token(key: bytes, held_id: str, *, ttl: float = LINK_TTL, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + ttl)
    return _sign(key, "review", [held_id, str(expires), secrets.token_urlsafe(9)])


def review_link(base_url: str, held_id: str, *, key: bytes | None = None, ttl: float = LINK_TTL) -> str:
    """`<base>/r/<token>`: opens held call `held_id` on the page, once, within `ttl` seconds."""
    return f"{base_url.rstrip('/')}/r/{review_token(key or link_key(), held_id, ttl=ttl)}"


class LinkProblem(ValueError):
    """Why a review link was refused, in words for the person who followed it."""


def check_review(key: bytes, token: str, now: float | None = None) -> tuple[str, str, float]:
    """(held_id, nonce, expires) of a valid, unexpired review token; raises LinkProblem otherwise."""
    fields = _verify(key, "review", token)
    if fields is None or len(fields) != 3 or not fields[1].isdigit():
        raise LinkProblem("this review link is not valid (mistyped, or made for another signoff)")
    held_id, expires, nonce = fields[0], float(fields[1]), fields[2]
    if (time.time() if now is None else now) > expires:
        raise LinkProblem("this review link has expired: open the page with its full URL, or run `signoff pending`")
    return held_id, nonce, expires


def call_cookie(key: bytes, held_id: str, *, ttl: float = CALL_SESSION_TTL, now: float | None = None) -> str:
    return _sign(key, "call", [held_id, str(int((time.time() if now is None else now) + ttl))])


def cookie_call(key: bytes, value: str | None, now: float | None = None) -> str | None:
    """The one held call a call-scoped cookie may see and decide, or None."""
    fields = _verify(key, "call", value)
    if fields is None or len(fields) != 2 or not fields[1].isdigit():
        return None
    return fields[0] if (time.time() if now is None else now) <= float(fields[1]) else None


class SpentLinks:
    """Nonces of spent review links, kept (with their expiry) in a file so a restart forgets none."""

    def __init__(self, path: Path | None = None):
        self.path = path or paths.home() / SPENT_FILE
        self._lock = threading.Lock()
        self._spent: dict[str, float] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                expires, _, nonce = line.partition(" ")
                if nonce and expires.replace(".", "", 1).isdigit():
                    self._spent[nonce] = float(expires)

    def spend(self, nonce: str, expires: float) -> bool:
        """True the first time `nonce` is spent; False ever after (until it has expired anyway)."""
        now = time.time()
        with self._lock:
            if nonce in self._spent:
                return False
            self._spent = {n: e for n, e in self._spent.items() if e >= now}
            self._spent[nonce] = expires
            text = "".join(f"{e:.0f} {n}\n" for n, e in self._spent.items())
            tmp = self.path.with_name(f".{SPENT_FILE}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
            return True
