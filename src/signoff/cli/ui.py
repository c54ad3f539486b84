"""`signoff ui`: the sidecar approval page."""

from __future__ import annotations

import sys

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def ui(
        port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1."),
        host: str = typer.Option("127.0.0.1", "--host", help="Listen elsewhere than 127.0.0.1 (warns: reachable by others)."),
        open_browser: bool = typer.Option(False, "--open", help="Open the page in a browser."),
        totp: bool = typer.Option(False, "--totp", help="Require a TOTP code for approvals and policy edits."),
        totp_reset: bool = typer.Option(False, "--totp-reset", help="Make a new TOTP secret and show its QR code."),
        policy: str = typer.Option(None, "--policy", help="The policy file to show and edit on the Policies page."),
        link: bool = typer.Option(False, "--link", help="Print the page's link with its secret token, and exit."),
        logged: bool = typer.Option(False, "--logged", hidden=True, help="stderr is a log file: no token in it."),
        public_url: str = typer.Option(
            None,
            "--public-url",
            help="The address phones use to reach this page (e.g. http://laptop.tailnet.ts.net:8765); accepted as a Host/Origin.",
        ),
        team: bool = typer.Option(
            False,
            "--team",
            help="Team mode even before anyone was added: people sign in (on anyway once `signoff user add` made someone).",
        ),
        trusted_proxy: list[str] = typer.Option(
            None,
            "--trusted-proxy",
            metavar="ADDRESS",
            help="A reverse proxy (address or network) whose X-Forwarded-For/-Proto/-Host are believed (repeatable).",
        ),
    ) -> None:
        """Serve the approval page (queue, history, policy, kill switch)."""
        from signoff import logs, paths
        from signoff.web.server import serve

        if link:  # the token is never logged; this is how a person gets the link
            from signoff.web.security import load_secret
            from signoff.web.server import url_for

            typer.echo(url_for(host, port, load_secret("ui-token") or ""))
            return

        logs.setup(None)
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(
                f"signoff: warning: listening on {host}: anyone who can reach it and has the token can approve calls", err=True
            )
        if totp_reset:
            (paths.home() / "ui-totp").unlink(missing_ok=True)
        from signoff.cli.exits import exits
        from signoff.serve.http_guard import is_wildcard, own_names

        with exits():
            serve(
                host=host,
                port=port,
                totp=totp or totp_reset,
                policy=policy,
                open_browser=open_browser,
                out=sys.stderr,
                logged=logged,
                public_url=public_url,
                team=team,
                trusted_proxies=trusted_proxy or [],
                own_names=own_names() if is_wildcard(host) else (),
            )
