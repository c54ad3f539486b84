"""`signoff user`: the people who may decide held calls (team mode), in the shared store.

Adding the first person turns team mode on: the page then wants a sign-in and `signoff
approve/deny` a person's token (`--token` or SIGNOFF_TOKEN). Exit 1: no such person (or a
refused input), 3: the store cannot be used.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from signoff.cli.exits import exits
from signoff.termsafe import clean, json_text

user_app = typer.Typer(help="People who approve (team mode): add, set, list, remove, token, passkey.", no_args_is_help=True)


def _people() -> Any:
    from signoff.approvals.store import open_store
    from signoff.team.users import People

    with exits():
        return People(open_store())


def _run(action: Any) -> Any:
    with exits():
        return action()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def show_totp(name: str, secret: str) -> None:
    import segno

    from signoff.team.factors import totp_uri

    uri = totp_uri(secret, name)
    typer.echo(f"TOTP for {name}: scan this with an authenticator app (shown once):")
    segno.make(uri, error="m").terminal(out=sys.stdout, compact=True)
    typer.echo(f"\nOr enter the key by hand: {secret}\n{uri}")


@user_app.command("add")
def add(
    name: str = typer.Argument(..., metavar="NAME", help="The person's name (letters, digits, . - _)."),
    role: list[str] = typer.Option(
        ...,
        "--role",
        metavar="ROLE",
        help="A role: approver (decides held calls), admin "
        "(edits the policy), or one your rules name in `approvers:` (repeatable).",
    ),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from the first line of stdin."),
    no_totp: bool = typer.Option(
        False, "--no-totp", help="No TOTP: the person will enrol a passkey (`signoff user passkey NAME`)."
    ),
) -> None:
    """Add a person who signs in to the page: password plus TOTP (shown as a QR code) or a passkey."""
    from signoff.approvals.audit import user

    people = _people()
    password = _password(password_stdin)
    secret = _run(lambda: people.add(name, role, password, totp=not no_totp, by=user()))
    person = people.get(name)
    typer.echo(f"added {clean(name)} (roles: {', '.join(person.roles)})")
    if secret:
        show_totp(name, secret)
    else:
        typer.echo(f"no TOTP: enrol a passkey now with `signoff user passkey {clean(name)}`")


@user_app.command("set")
def set_(
    name: str = typer.Argument(..., metavar="NAME"),
    role: list[str] = typer.Option(None, "--role", metavar="ROLE", help="Replace the person's roles (repeatable)."),
    password: bool = typer.Option(False, "--password", help="Set a new password (asked twice)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Set a new password read from stdin."),
    new_totp: bool = typer.Option(False, "--new-totp", help="A new TOTP secret (a lost phone); shown once."),
) -> None:
    """Change a person's roles, password or TOTP secret; roles apply at their next request."""
    people = _people()
    secret_word = _password(password_stdin) if password or password_stdin else None
    secret = _run(lambda: people.change(name, roles=role or None, password=secret_word, new_totp=new_totp))
    person = people.get(name)
    typer.echo(f"changed {clean(name)} (roles: {', '.join(person.roles)})")
    if secret:
        show_totp(name, secret)


@user_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="JSON, for scripts.")) -> None:
    """List the people, their roles and second factors."""
    people = _run(lambda: _people().all())
    if as_json:
        typer.echo(json_text([p.as_dict() for p in people], indent=2))
        return
    if not people:
        typer.echo("no people: team mode is off (`signoff user add NAME --role approver`)")
        return
    for p in people:
        factors = ", ".join(f for f, on in (("TOTP", p.totp), (f"{len(p.passkeys)} passkey(s)", p.passkeys)) if on)
        typer.echo(f"{clean(p.name)}  roles: {', '.join(p.roles)}  second factor: {factors or 'none yet'}")


@user_app.command("remove")
def remove(name: str = typer.Argument(..., metavar="NAME")) -> None:
    """Remove a person: their page sessions end and their CLI tokens stop working at once."""
    _run(lambda: _people().remove(name))
    typer.echo(f"removed {clean(name)}")


@user_app.command("token")
def token(name: str = typer.Argument(..., metavar="NAME")) -> None:
    """Make a CLI token for NAME (`signoff approve --token`, or SIGNOFF_TOKEN); shown once."""
    value = _run(lambda: _people().new_token(name))
    typer.echo(value)
    typer.echo(f"(the token for {clean(name)}: shown once, stored only as a hash)", err=True)


@user_app.command("passkey")
def passkey(
    name: str = typer.Argument(..., metavar="NAME"),
    url: str = typer.Option(
        "http://localhost:8765",
        "--url",
        metavar="URL",
        help="The page's address as the person's browser reaches it (its --public-url).",
    ),
) -> None:
    """Print a one-time link (15 minutes) that enrols a passkey for NAME on the page."""
    value = _run(lambda: _people().new_enrolment(name))
    typer.echo(f"{url.rstrip('/')}/enrol/{value}")


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
