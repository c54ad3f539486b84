"""Tell a human that a call is waiting: Slack, Telegram, ntfy, email, webhooks… through apprise.

Sending happens on a worker thread so a slow or broken notifier never delays, blocks or decides
a held call; a failure is logged and that is all. `apprise` is imported on first use only.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from signoff.model import ToolCall, canonical_json
from signoff.redact import redact

log = logging.getLogger("signoff.notify")

MAX_ARGS_SHOWN = 4
MAX_VALUE_CHARS = 120


def key_arguments(arguments: Mapping[str, Any]) -> list[str]:
    """The first few arguments, each folded to one short line (secret-looking values redacted)."""
    arguments = redact(dict(arguments))
    lines = []
    for name, value in list(arguments.items())[:MAX_ARGS_SHOWN]:
        text = value if isinstance(value, str) else canonical_json(value)
        text = " ".join(str(text).split())
        if len(text) > MAX_VALUE_CHARS:
            text = text[: MAX_VALUE_CHARS - 1] + "…"
        lines.append(f"{name} = {text}")
    if len(arguments) > MAX_ARGS_SHOWN:
        lines.append(f"(+{len(arguments) - MAX_ARGS_SHOWN} more)")
    return lines


def message_for(call: ToolCall, held_id: str, reason: str, link: str | None) -> tuple[str, str]:
    """(title, body) of the notification for one held call."""
    title = f"signoff: approve {call.qualified}?"
    body = [f"{call.qualified} is waiting for approval ({held_id})."]
    if reason:
        body.append(f"Why: {reason}")
    body.extend(key_arguments(call.arguments))
    if link:
        body.append(f"Review: {link}")
    body.append(f"Or run: signoff approve {held_id}   /   signoff deny {held_id}")
    return title, "\n".join(body)


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

    def __init__(self, urls: Sequence[str], *, link: str | None = None, desktop: bool = False, timeout: float = 10.0):
        self.urls = list(urls)
        if desktop and (url := desktop_url()):
            self.urls.append(url)
        self.link = link
        self.timeout = timeout
        self._apprise: Any = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.urls)

    def held(self, call: ToolCall, held_id: str, reason: str) -> threading.Thread | None:
        """Notify in the background; returns the worker thread (tests join it)."""
        if not self.urls:
            return None
        link = f"{self.link.rstrip('/')}/#{held_id}" if self.link else None
        title, body = message_for(call, held_id, reason, link)
        worker = threading.Thread(target=self._send, args=(title, body), name=f"notify-{held_id}", daemon=True)
        worker.start()
        return worker

    def _client(self) -> Any:
        with self._lock:
            if self._apprise is None:
                import apprise

                client = apprise.Apprise()
                for url in self.urls:
                    if not client.add(url):
                        log.error("notification URL not understood by apprise: %s", _redact(url))
                self._apprise = client
            return self._apprise

    def _send(self, title: str, body: str) -> None:
        try:
            client = self._client()
            if not client.notify(title=title, body=body):
                log.warning("a notification could not be delivered (see apprise's log above)")
        except Exception as exc:  # noqa: BLE001 - top of the worker thread: a notifier must never break a call
            log.warning("notification failed: %s", exc)


def _redact(url: str) -> str:
    """Enough of a URL to recognise it, without its secrets."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest[:4]}…" if rest else url
