"""The approval page's locks: who may load it, who may change anything, and from where.

- a secret token (in the URL once, then an HttpOnly SameSite=Strict cookie) for every request;
- the Host header must name this server (a DNS-rebinding page cannot reach it);
- state changes only by POST, with a same-origin `Origin` (or `Referer`) and a single-use CSRF
  token, so a replayed or forged form is refused;
- optionally a TOTP code (pyotp) for approvals and policy edits, with wrong guesses throttled
  per client and overall (exponential lockout, logged, answered 429 with Retry-After).
Approvals never travel over the MCP channel the model controls: this page is the human's.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from signoff import paths
from signoff.team.throttle import Throttle

log = logging.getLogger("signoff.web")
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
    tmp = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    try:  # link(2) fails if another process made the secret first: then theirs is the one
        os.link(tmp, path)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
    finally:
        os.unlink(tmp)
    return value


class TotpThrottle(Throttle):
    """Wrong TOTP codes on the page (see team/throttle.py), logged as the page's."""

    what = "TOTP code"
    short = "TOTP"
    log = log


def home_id() -> str:
    """Names this SIGNOFF_HOME without revealing its path: `run --ui` adopts only its own page."""
    import hashlib

    return hashlib.sha256(str(paths.home().resolve()).encode()).hexdigest()[:16]


class Guard:
    """Checks every request against the token, the Host header, the origin and CSRF/TOTP."""

    def __init__(
        self,
        token: str,
        host: str,
        port: int,
        *,
        totp_secret: str | None = None,
        public_url: str | None = None,
        trusted_proxies: Iterable[str] = (),
        own_names: Iterable[str] = (),
    ):
        """`own_names`: this machine's names and addresses, accepted as Host when listening on all
        interfaces (the caller computes them; without them only loopback names are accepted)."""
        self.token = token
        self.secure = bool(public_url and public_url.lower().startswith("https://"))
        """Cookies are Secure: the page is reached over https (perhaps through a TLS-terminating proxy)."""
        self.trusted_proxies = tuple(ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies)
        """Reverse proxies whose X-Forwarded-For/-Proto/-Host headers are believed (middleware.Forwarded)."""
        self.port = port
        names = {host, "127.0.0.1", "localhost", "[::1]"}
        if host in ("0.0.0.0", "::", ""):  # listening everywhere: answer to this machine's own addresses and names
            names |= {f"[{n}]" if ":" in n else n for n in own_names}
        self.allowed_hosts = {f"{name}:{port}" for name in names}
        self.origins = {f"http://{h}" for h in self.allowed_hosts}
        if public_url:  # the address a phone uses (e.g. over Tailscale, perhaps behind an HTTPS proxy)
            parts = urlsplit(public_url)
            self.allowed_hosts.add(parts.netloc.lower())
            self.origins.add(f"{parts.scheme}://{parts.netloc}".lower())
        self.home_id = home_id()
        self.totp_secret = totp_secret
        self._csrf: OrderedDict[str, float] = OrderedDict()
        self._used_totp: OrderedDict[str, float] = OrderedDict()
        self.throttle = TotpThrottle()

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

    def totp_refusal(self, code: str | None, client: str) -> tuple[str | None, float]:
        """(why a code is refused, seconds to wait before trying again), or (None, 0) if accepted.

        A locked client (or a locked page, after many wrong codes overall) is refused without
        looking at the code.
        """
        if self.totp_secret is None:
            return None, 0.0
        wait = self.throttle.retry_after(client)
        if wait > 0:
            return f"too many wrong TOTP codes: try again in {math.ceil(wait)} s", wait
        if self.totp_ok(code):
            self.throttle.succeeded(client)
            return None, 0.0
        self.throttle.failed(client)
        return "wrong or reused TOTP code", 0.0
