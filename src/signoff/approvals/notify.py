"""Tell a human that a call is waiting: Slack, Telegram, ntfy, email, webhooks… through apprise.

Sending happens on a worker thread so a slow or broken notifier never delays, blocks or decides
a held call; a failure is logged and that is all. `apprise` is imported on first use only.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from signoff.model import ToolCall, canonical_json
from signoff.redact import redact, redact_text
from signoff.termsafe import one_line

log = logging.getLogger("signoff.notify")

MAX_ARGS_SHOWN = 4
MAX_VALUE_CHARS = 120


def key_arguments(arguments: Mapping[str, Any]) -> list[str]:
    """The first few arguments, each folded to one short line (secret-looking values redacted)."""
    arguments = redact(dict(arguments))
    lines = []
    for name, value in list(arguments.items())[:MAX_ARGS_SHOWN]:
        text = one_line(value if isinstance(value, str) else canonical_json(value), MAX_VALUE_CHARS)
        lines.append(one_line(f"{name} = {text}", MAX_VALUE_CHARS * 2))
    if len(arguments) > MAX_ARGS_SHOWN:
        lines.append(f"(+{len(arguments) - MAX_ARGS_SHOWN} more)")
    return lines


def message_for(call: ToolCall, held_id: str, reason: str, link: str | None, shown: Any = None) -> tuple[str, str]:
    """(title, body) of the notification for one held call: with a presentation (signoff.approvals.present),
    the title says what the call does and the body starts with its facts."""
    if shown is not None:
        title, body = shown.summary()
        title = _one_line(title)
        body = [_one_line(line) for line in body] + [_one_line(f"{call.qualified} is waiting for approval ({held_id}).")]
    else:
        title = _one_line(f"signoff: approve {call.qualified}?")
        body = [_one_line(f"{call.qualified} is waiting for approval ({held_id}).")]
        if reason:
            body.append(_one_line(f"Why: {reason}"))
        body.extend(key_arguments(call.arguments))
    if link:
        body.append(f"Review: {link}")
    body.append(f"Or run: signoff approve {held_id}   /   signoff deny {held_id}")
    return title, "\n".join(body)


def _one_line(text: str) -> str:
    """Model text on one short line (a notification line cannot be split or faked by a newline)."""
    return one_line(redact_text(str(text)), MAX_VALUE_CHARS * 2)


def desktop_url() -> str | None:
    """Apprise's desktop notifier for this platform, if it has one."""
    if sys.platform == "darwin":
        return "macosx://"
    if sys.platform.startswith("win"):
        return "windows://"
    if sys.platform.startswith("linux"):
        return "dbus://"
    return None


class Notifier:
    """Sends one message per held call to every configured apprise URL."""

    def __init__(
        self, urls: Sequence[str], *, review: Callable[[str], str] | None = None, desktop: bool = False, timeout: float = 10.0
    ):
        """`review(held_id)` makes a call's review link (web.links.review_link under the page's address)."""
        self.urls = list(urls)
        if desktop and (url := desktop_url()):
            self.urls.append(url)
        self.review = review
        self.timeout = timeout
        self._apprise: Any = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.urls)

    def held(self, call: ToolCall, held_id: str, reason: str, *, shown: Any = None) -> threading.Thread | None:
        """Notify in the background; returns the worker thread (tests join it)."""
        if not self.urls:
            return None
        link = self._review_link(held_id)
        title, body = message_for(call, held_id, reason, link, shown)
        worker = threading.Thread(target=self._send, args=(title, body), name=f"notify-{held_id}", daemon=True)
        worker.start()
        return worker

    def _review_link(self, held_id: str) -> str | None:
        """A per-call review link (never the page's master token); none if the key cannot be read."""
        if self.review is None:
            return None
        try:
            return self.review(held_id)
        except OSError as exc:
            log.warning("cannot make a review link (%s); the notification goes without one", exc)
            return None

    def _clients(self) -> list[tuple[str, Any]]:
        """One apprise client per URL, so a failure names the notifier that failed."""
        with self._lock:
            if self._apprise is None:
                import apprise

                self._apprise = []
                for url in self.urls:
                    client = apprise.Apprise()
                    if client.add(url):
                        self._apprise.append((url, client))
                    else:
                        log.error("notification URL not understood by apprise: %s", redact_url(url))
            return self._apprise

    def _send(self, title: str, body: str) -> None:
        for url, client in self._clients():
            try:
                if not client.notify(title=title, body=body):
                    log.warning("notification to %s could not be delivered (see apprise's log above)", redact_url(url))
            except Exception as exc:  # noqa: BLE001 - top of the worker thread: a notifier must never break a call
                log.warning("notification to %s failed: %s", redact_url(url), exc)


def redact_url(url: str) -> str:
    """Enough of a notifier URL to recognise it, without its secrets: the scheme and a host-like
    host stay; user, password, tokens (apprise often puts them in the host or path) and query go."""
    from urllib.parse import urlsplit

    scheme, sep, _ = url.partition("://")
    try:
        parts = urlsplit(url)
        host, number = parts.hostname or "", parts.port
    except ValueError:
        return f"{scheme}://…" if sep else "…"
    if not sep:
        return "…"
    hostlike = "." in host or host == "localhost"
    shown = host if hostlike else ("…" if host else "")
    port = f":{number}" if hostlike and number else ""
    user = "…@" if parts.username or parts.password else ""
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{user}{shown}{port}{rest}"
