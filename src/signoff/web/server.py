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
from collections.abc import Iterable
from typing import IO, TextIO, cast

from signoff import paths
from signoff.errors import ConfigError
from signoff.web.security import Guard, home_id, load_secret

log = logging.getLogger("signoff.web")
DEFAULT_PORT = 8765
PORTS_TRIED = 10
"""`run --ui` tries this many ports from the default when others serve another SIGNOFF_HOME."""


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
    segno.make(uri, error="m").terminal(out=cast(TextIO, out), compact=True)  # segno types it TextIO; any text stream works
    out.write(f"\nOr enter the key by hand: {secret}\n")


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    totp: bool = False,
    policy: str | None = None,
    open_browser: bool = False,
    out: IO[str] = sys.stderr,
    logged: bool = False,
    public_url: str | None = None,
    team: bool = False,
    trusted_proxies: list[str] | None = None,
    own_names: Iterable[str] = (),
) -> None:
    """`logged`: `out` is a log file (the background page's ui.log), so the link is written
    without its secret token and no TOTP secret is shown. `team`: people must sign in even
    before anyone was added (team mode is on anyway once someone is)."""
    import uvicorn

    from signoff.approvals.broker import Broker
    from signoff.team.users import People
    from signoff.web.app import UI, create_app
    from signoff.web.team import TeamPage

    token = load_secret("ui-token")
    assert token is not None
    secret = totp_secret(enrol_out=None if logged else out) if totp else None
    try:
        guard = Guard(
            token,
            host if ":" not in host else f"[{host}]",
            port,
            totp_secret=secret,
            public_url=public_url,
            trusted_proxies=trusted_proxies or (),
            own_names=own_names,
        )
    except ValueError as exc:
        raise ConfigError(f"--trusted-proxy: {exc} (give an address or a network such as 10.0.0.0/8)") from exc
    broker = Broker()
    team_page = TeamPage(People(broker.store), guard, forced=team)
    app = create_app(UI(broker, guard, policy_path=policy), team_page)
    if team_page.active():
        out.write("team mode: people sign in with their name (`signoff user add NAME --role approver`)\n")
    url = url_for(host, port, token)
    shown = f"{url.split('?')[0]} (its link with the secret token: `signoff ui --link`)" if logged else url
    out.write(f"signoff approval page: {shown}\n")
    if public_url:
        out.write(f"review links in notifications open {public_url.rstrip('/')}/r/… (one call each, once)\n")
    out.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    # forwarded headers are judged by the page itself (middleware.Forwarded, --trusted-proxy only)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)


def page_home(port: int = DEFAULT_PORT) -> str | None:
    """The home id a signoff page on `port` serves ("" for an older page that does not say), or None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5) as response:  # noqa: S310 - loopback
            answer = response.read(200).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return None
    if not answer.startswith("signoff ui"):
        return "?"  # something else listens there
    return answer.partition("home=")[2].strip()


def running(port: int = DEFAULT_PORT) -> bool:
    """A page for THIS SIGNOFF_HOME answers on `port`."""
    return page_home(port) == home_id()


def ensure_running(port: int = DEFAULT_PORT, policy: str | None = None, public_url: str | None = None) -> str:
    """Start the page in the background unless ours answers; returns its URL (with the token).

    A port where something else answers (another SIGNOFF_HOME's page, another program) is never
    adopted: its queue is not this home's. The next ports are tried instead."""
    token = load_secret("ui-token")
    assert token is not None
    for candidate in range(port, port + PORTS_TRIED):
        answer = page_home(candidate)
        if answer == home_id():
            return url_for("127.0.0.1", candidate, token)
        if answer is None:
            break
        log.warning("port %d answers for another SIGNOFF_HOME (or another program): not adopting it", candidate)
    else:
        raise ConfigError(
            f"ports {port}-{port + PORTS_TRIED - 1} are all taken by other pages; start one with `signoff ui --port N`"
        )
    command = [sys.executable, "-m", "signoff", "ui", "--port", str(candidate), "--logged"]
    if policy and os.path.isfile(policy):
        command += ["--policy", policy]
    if public_url:
        command += ["--public-url", public_url]
    paths.secure_file(paths.home() / "ui.log")
    with open(paths.home() / "ui.log", "ab") as log_file:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True)
    (paths.home() / "ui.pid").write_text(f"{child.pid}\n", encoding="utf-8")
    log.info("started the approval page in the background (port %d, pid %d)", candidate, child.pid)
    return url_for("127.0.0.1", candidate, token)
