"""Held-call notifications: delivered to a real local webhook; a broken notifier changes nothing."""

from __future__ import annotations

import functools
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from signoff.approvals.notify import Notifier, key_arguments, message_for
from signoff.model import ToolCall
from signoff.web.links import check_review, link_key, review_link

CALL = ToolCall("filesystem", "write_file", {"path": "/srv/app/config.yaml", "content": "x" * 500, "mode": 420})


class Webhook:
    """A local HTTP server that records the first POST and signals an event."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                outer.received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                outer.arrived.set()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_message_shows_server_tool_key_arguments_and_link() -> None:
    title, body = message_for(CALL, "h-abc123", "file writes need approval", "http://127.0.0.1:8765/")
    assert title == "signoff: approve filesystem.write_file?"
    assert "path = /srv/app/config.yaml" in body
    assert "Why: file writes need approval" in body
    assert "Review: http://127.0.0.1:8765/" in body
    assert "signoff approve h-abc123" in body
    folded = next(line for line in key_arguments(CALL.arguments) if line.startswith("content"))
    assert len(folded) < 140 and folded.endswith("…")


def test_notification_reaches_a_local_webhook() -> None:
    hook = Webhook()
    try:
        notifier = Notifier(
            [f"json://127.0.0.1:{hook.port}/hook"], review=functools.partial(review_link, "http://127.0.0.1:8765")
        )
        worker = notifier.held(CALL, "h-abc123", "file writes need approval")
        assert hook.arrived.wait(20)
        assert worker is not None
        worker.join(20)
        payload = hook.received[0]
        assert payload["title"] == "signoff: approve filesystem.write_file?"
        assert "h-abc123" in payload["message"]
        [link] = [w for w in payload["message"].split() if w.startswith("http://127.0.0.1:8765/r/")]
        assert check_review(link_key(), link.rsplit("/", 1)[1])[0] == "h-abc123"  # a per-call review link
    finally:
        hook.close()


def test_failing_notifier_is_logged_and_never_raises(caplog) -> None:
    notifier = Notifier(["json://127.0.0.1:9/unreachable", "not-a-url"])
    worker = notifier.held(CALL, "h-1", "")
    assert worker is not None
    worker.join(30)
    assert not worker.is_alive()
    assert any("not understood" in r.message or "could not be delivered" in r.message for r in caplog.records)


def test_failing_notifier_is_named_with_its_secrets_masked(caplog) -> None:
    notifier = Notifier(["json://user:hunter2@127.0.0.1:9/secret-path", "tgram://123456:BOTTOKEN/42"])
    worker = notifier.held(CALL, "h-1", "")
    assert worker is not None
    worker.join(30)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "json://…@127.0.0.1:9/…" in text
    assert "hunter2" not in text and "secret-path" not in text and "BOTTOKEN" not in text


def test_no_urls_means_no_thread() -> None:
    assert Notifier([]).held(CALL, "h-1", "") is None
    assert not Notifier([])


def test_a_notification_without_a_presentation_is_still_one_clean_line_per_field() -> None:
    """The fallback message (no presentation) blanks control and bidi characters too: a tool name,
    reason or argument cannot split a line, fake one, or reorder the text a phone shows."""
    hostile = ToolCall("fs", "write\u202efile\nApproved: yes", {"path": "/tmp/a\x1b[2K\rok", "body": "x\u2066y"})
    title, body = message_for(hostile, "h-1", "because\nApproved by alice", None)
    for text in (title, *body.split("\n")):
        assert not any(c in text for c in "\x1b\r\u202e\u2066"), text
    assert "Approved: yes" in title and "\nApproved" not in title
    assert not any(line.startswith("Approved") for line in body.split("\n"))
