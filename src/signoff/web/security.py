"""The approval page's locks: who may load it, who may change anything, and from where.

- a secret token (in the URL once, then an HttpOnly SameSite=Strict cookie) for every request;
- the Host header must name this server (a DNS-rebinding page cannot reach it);
- state changes only by POST, with a same-origin `Origin` (or `Referer`) and a single-use CSRF
  token, so a replayed or forged form is refused;
- optionally a TOTP code (pyotp) for approvals and policy edits.
Approvals never travel over the MCP channel the model controls: this page is the human's.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlsplit

from signoff import paths

COOKIE = "signoff_token"
CSRF_TTL = 3600.0
MAX_CSRF = 2048


def load_secret(name: str, *, create: bool = True) -> str | None:
    """A secret kept in SIGNOFF_HOME (mode 0600), made on first use, so restarts keep links valid."""
    path: Path = paths.home() / name
    if path.exists():
        paths.secure_file(path, create=False)  # an older, looser copy is tightened to 0600
        return path.read_text(encoding="utf-8").strip()
    if not create:
        return None
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value


class Guard:
    """Checks every request against the token, the Host header, the origin and CSRF/TOTP."""

    def __init__(self, token: str, host: str, port: int, *, totp_secret: str | None = None):
        self.token = token
        self.port = port
        names = {host, "127.0.0.1", "localhost", "[::1]"}
        self.allowed_hosts = {f"{name}:{port}" for name in names}
        self.origins = {f"http://{h}" for h in self.allowed_hosts}
        self.totp_secret = totp_secret
        self._csrf: OrderedDict[str, float] = OrderedDict()
        self._used_totp: OrderedDict[str, float] = OrderedDict()

    # ------------------------------------------------------------------ checks (each returns a refusal or None)

    def host_refusal(self, host: str | None) -> str | None:
        if not host or host.lower() not in self.allowed_hosts:
            return "this page only answers to its own address (Host header refused)"
        return None

    def token_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.token.encode())  # type: ignore[union-attr]

    def origin_refusal(self, origin: str | None, referer: str | None) -> str | None:
        """POSTs must come from this page itself."""
        if origin:
            return None if origin.lower() in self.origins else "cross-origin request refused"
        if referer:
            parts = urlsplit(referer)
            return None if f"{parts.scheme}://{parts.netloc}".lower() in self.origins else "cross-origin request refused"
        return "request without Origin or Referer refused"

    # ------------------------------------------------------------------ CSRF: single use, short-lived

    def new_csrf(self) -> str:
        value = secrets.token_urlsafe(18)
        now = time.monotonic()
        self._csrf[value] = now + CSRF_TTL
        while len(self._csrf) > MAX_CSRF:
            self._csrf.popitem(last=False)
        return value

    def use_csrf(self, value: str | None) -> bool:
        """True once per issued token; a replay or an unknown token is refused."""
        if not value:
            return False
        expires = self._csrf.pop(value, None)
        return expires is not None and expires >= time.monotonic()

    # ------------------------------------------------------------------ TOTP

    @property
    def totp_required(self) -> bool:
        return self.totp_secret is not None

    def totp_ok(self, code: str | None) -> bool:
        """A valid current code, never accepted twice (a watched code cannot be replayed)."""
        if self.totp_secret is None:
            return True
        if not code or not code.strip().isdigit():
            return False
        import pyotp

        code = code.strip()
        if code in self._used_totp or not pyotp.TOTP(self.totp_secret).verify(code, valid_window=1):
            return False
        self._used_totp[code] = time.monotonic()
        while len(self._used_totp) > 16:
            self._used_totp.popitem(last=False)
        return True

    def totp_uri(self) -> str | None:
        if self.totp_secret is None:
            return None
        import pyotp

        return pyotp.TOTP(self.totp_secret).provisioning_uri(name="approvals", issuer_name="signoff")
