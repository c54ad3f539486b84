"""Who may talk to `signoff run --http`, and how much: Host, Origin, token, media types, limits.

Every check runs on the request head, before the body is read and long before anything is
spawned. A refusal is one HTTP status with a JSON-RPC error body, as the reference servers
answer: 403 for a foreign Host or Origin (DNS rebinding, a web page posting cross-origin),
421 when the server listens on every interface and the request names a host that is not this
machine, 401 without the right bearer token, 415/406 for a wrong Content-Type/Accept.
"""

from __future__ import annotations

import hmac
import ipaddress
import itertools
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from signoff.config import parse_duration
from signoff.errors import ConfigError

log = logging.getLogger("signoff.http")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
FORBIDDEN = -32000
"""JSON-RPC error code the reference servers use for transport-level refusals."""


class Refusal(Exception):
    """A request refused before it reached the relay: an HTTP status and one line saying why."""

    def __init__(
        self, status: int, message: str, *, code: int = FORBIDDEN, headers: dict[str, str] | None = None, request_id: Any = None
    ):
        super().__init__(message)
        self.status, self.code, self.headers, self.request_id = status, code, headers or {}, request_id


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def own_names() -> set[str]:
    """This machine's names and addresses (every interface), for a server bound to all of them."""
    names = set(LOOPBACK_NAMES)
    for name in {socket.gethostname(), socket.getfqdn()}:
        names.add(name.lower())
        try:
            names.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    names.update(_interface_addresses())
    return {n.split("%")[0].lower() for n in names if n}


def _interface_addresses() -> set[str]:
    """Local IPv4 (from /proc/net/fib_trie) and IPv6 (/proc/net/if_inet6) addresses, Linux only."""
    found: set[str] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for previous, line in itertools.pairwise(lines):
            if "/32 host LOCAL" in line:
                found.add(previous.split()[-1])
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0]
            found.add(str(ipaddress.ip_address(int(raw, 16))))
    except (OSError, ValueError, IndexError):
        pass
    return found


def _split_host(value: str) -> tuple[str, int | None]:
    """`name[:port]` or `[v6][:port]` → (lower-case name, port or None); ValueError if malformed."""
    parts = urlsplit("//" + value)
    name = parts.hostname
    if not name or parts.username is not None or parts.path or parts.query:
        raise ValueError(value)
    return name.lower(), parts.port


@dataclass
class Guard:
    """The checks for one listening address."""

    host: str
    port: int
    allow_hosts: list[str] = field(default_factory=list)
    token: bytes | None = None
    names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        bound = self.host.lower()
        if is_wildcard(bound):
            self.names = own_names()
        elif is_loopback(bound):
            self.names = set(LOOPBACK_NAMES) | {bound}
        else:
            self.names = {bound, socket.gethostname().lower(), socket.getfqdn().lower()}
        self.names |= {h.lower().strip("[]") for h in self.allow_hosts}

    def _known(self, value: str) -> bool:
        try:
            name, port = _split_host(value)
        except ValueError:
            return False
        return name in self.names and port in (self.port, None if self.port == 80 else self.port)

    def check(self, method: str, headers: dict[str, str]) -> None:
        """Raise Refusal for a request this server must not serve (head only, nothing read yet)."""
        host = headers.get("host", "")
        if not self._known(host):
            status = 421 if is_wildcard(self.host) else 403
            raise Refusal(status, f"Host {host[:100]!r} is not this server; add it with --allow-host if it is")
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not self._known(parts.netloc):
                raise Refusal(403, f"Origin {origin[:100]!r} is not allowed")
        if self.token is not None:
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
                raise Refusal(401, "Unauthorized: send Authorization: Bearer <token>", headers={"www-authenticate": "Bearer"})
        if method == "POST":
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise Refusal(415, "Unsupported Media Type: Content-Type must be application/json")
            if not accepts(headers, "application/json") or not accepts(headers, "text/event-stream"):
                raise Refusal(406, "Not Acceptable: Accept must list application/json and text/event-stream")
        elif method == "GET" and not accepts(headers, "text/event-stream"):
            raise Refusal(406, "Not Acceptable: Accept must list text/event-stream")


def accepts(headers: dict[str, str], media: str) -> bool:
    kind = media.split("/")[0] + "/*"
    listed = {part.split(";")[0].strip().lower() for part in headers.get("accept", "").split(",")}
    return bool(listed & {media, kind, "*/*"})


def load_token(path: str | None) -> bytes | None:
    """The bearer token from --auth-token-file, else $SIGNOFF_HTTP_TOKEN, else None."""
    text = Path(path).expanduser().read_text().strip() if path else os.environ.get("SIGNOFF_HTTP_TOKEN", "").strip()
    return text.encode() if text else None


@dataclass
class HttpOptions:
    """Limits and access for the HTTP endpoint (CLI: --allow-host, --auth-token-file, --http-*)."""

    allow_hosts: list[str] = field(default_factory=list)
    token: bytes | None = None
    idle_timeout: float = 1800.0
    """A session with nothing in flight and no open stream for this long is closed."""
    max_sessions: int = 100
    max_body: int = 16 * 1024 * 1024
    max_in_flight: int = 256
    """Requests one session may have unanswered at once (each keeps a stream and its events)."""
    resume_window: float = field(default_factory=lambda: float(os.environ.get("SIGNOFF_HTTP_RESUME_WINDOW", "30")))
    """How long a dropped stream waits for its client to resume before its requests are withdrawn."""


def options_from_cli(host: str, given: dict[str, Any]) -> tuple[HttpOptions, str | None]:
    """--http options → HttpOptions (and the --share override); warns when reachable by others."""
    from signoff.relay.share import SHARE_MODES

    share = given.get("share")
    if share and share not in SHARE_MODES:
        raise ConfigError(f"--share expects one of {', '.join(SHARE_MODES)}, got {share!r}")
    try:
        token = load_token(given.get("token_file"))
    except OSError as exc:
        raise ConfigError(f"cannot read the token file: {exc}", field="--auth-token-file") from None
    if given.get("token_file") and token is None:
        raise ConfigError("the token file is empty", field="--auth-token-file")
    options = HttpOptions(allow_hosts=list(given.get("allow_hosts") or []), token=token)
    if given.get("idle_timeout"):
        try:
            options.idle_timeout = parse_duration(given["idle_timeout"])
        except ValueError as exc:
            raise ConfigError(str(exc), field="--http-idle-timeout") from None
    for key in ("max_sessions", "max_body"):
        if given.get(key) is not None:
            if given[key] < 1:
                raise ConfigError(f"must be at least 1, got {given[key]}", field="--http-" + key.replace("_", "-"))
            setattr(options, key, given[key])
    if not is_loopback(host):
        log.warning(
            "serving on %s: the MCP endpoint is reachable from other machines; only requests naming this "
            "machine's own addresses or names (or --allow-host entries) are served",
            host,
        )
        if token is None:
            log.warning(
                "NO AUTHENTICATION: anyone who can reach %s can call the wrapped tools; "
                "set --auth-token-file or SIGNOFF_HTTP_TOKEN",
                host,
            )
    return options, share
