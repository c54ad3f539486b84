"""Running the approval page: one per machine, on 127.0.0.1 unless told otherwise.

The URL's secret token is kept in SIGNOFF_HOME so the printed link stays valid across restarts;
`signoff run --ui` starts the page in the background when none answers yet.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import IO

from signoff import paths
from signoff.web.security import Guard, load_secret

log = logging.getLogger("signoff.web")
DEFAULT_PORT = 8765


def url_for(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def totp_secret(*, enrol_out: IO[str] | None) -> str:
    """The TOTP secret; shown as a QR code on the terminal when it is first made."""
    import pyotp

    path = paths.home() / "ui-totp"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    secret = pyotp.random_base32()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
    if enrol_out is not None:
        show_enrolment(secret, enrol_out)
    return secret


def show_enrolment(secret: str, out: IO[str]) -> None:
    import pyotp
    import segno

    uri = pyotp.TOTP(secret).provisioning_uri(name="approvals", issuer_name="signoff")
    out.write("Scan this with your authenticator app (shown once; `signoff ui --totp-reset` makes a new one):\n")
    segno.make(uri, error="m").terminal(out=out, compact=True)
    out.write(f"\nOr enter the key by hand: {secret}\n")


def serve(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, totp: bool = False, policy: str | None = None,
          open_browser: bool = False, out: IO[str] = sys.stderr, logged: bool = False) -> None:
    """`logged`: `out` is a log file (the background page's ui.log), so the link is written
    without its secret token and no TOTP secret is shown."""
    import uvicorn

    from signoff.broker import Broker
    from signoff.web.app import UI, create_app

    token = load_secret("ui-token")
    assert token is not None
    secret = totp_secret(enrol_out=None if logged else out) if totp else None
    guard = Guard(token, host if ":" not in host else f"[{host}]", port, totp_secret=secret)
    app = create_app(UI(Broker(), guard, policy_path=policy))
    url = url_for(host, port, token)
    shown = f"{url.split('?')[0]} (its link with the secret token: `signoff ui --link`)" if logged else url
    out.write(f"signoff approval page: {shown}\n")
    out.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def running(port: int = DEFAULT_PORT) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5) as response:  # noqa: S310 - loopback
            return response.read().startswith(b"signoff ui")
    except (urllib.error.URLError, OSError):
        return False


def ensure_running(port: int = DEFAULT_PORT, policy: str | None = None) -> str:
    """Start the page in the background unless one answers; returns its URL (with the token)."""
    token = load_secret("ui-token")
    assert token is not None
    if not running(port):
        command = [sys.executable, "-m", "signoff", "ui", "--port", str(port), "--logged"]
        if policy and os.path.isfile(policy):
            command += ["--policy", policy]
        paths.secure_file(paths.home() / "ui.log")
        with open(paths.home() / "ui.log", "ab") as log_file:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                     start_new_session=True)
        (paths.home() / "ui.pid").write_text(f"{child.pid}\n", encoding="utf-8")
        log.info("started the approval page in the background (port %d, pid %d)", port, child.pid)
    return url_for("127.0.0.1", port, token)
