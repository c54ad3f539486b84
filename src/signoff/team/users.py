"""The people who may decide held calls (team mode): names, roles, passwords, CLI tokens.

A person lives in the shared store (`users`); their password only as an argon2id hash, their CLI
token and one-time passkey enrolment links only as SHA-256 hashes (a token is random, so a fast
hash is enough and lets it be looked up). Team mode is on as soon as one person exists: the page
then wants a sign-in, and `signoff approve/deny` a person's token. Decisions name the person as
`user:<name>`. Nothing here imports the web page or the CLI.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from signoff.errors import StoreError, TeamError

APPROVER = "approver"
"""The role that may decide a held call whose rule names no `approvers:`."""
ADMIN = "admin"
"""The role that may edit the policy from the page."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ROLE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MIN_PASSWORD = 10
TOKEN_PREFIX = "sot_"
ENROL_TTL = 900.0
"""A passkey enrolment link works once, within 15 minutes."""


@dataclass(frozen=True)
class Person:
    name: str
    roles: tuple[str, ...]
    totp: bool
    passkeys: tuple[Mapping[str, Any], ...]
    created: float
    created_by: str = ""

    @property
    def by(self) -> str:
        """How decisions and the audit trail name this person."""
        return f"user:{self.name}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "roles": list(self.roles),
            "totp": self.totp,
            "passkeys": len(self.passkeys),
            "created": self.created,
            "created_by": self.created_by,
        }


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _person(row: Mapping[str, Any]) -> Person:
    return Person(
        row["name"],
        tuple(json.loads(row["roles"])),
        bool(row["totp_secret"]),
        tuple(json.loads(row["passkeys"] or "[]")),
        row["created"],
        row.get("created_by") or "",
    )


def check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(r.strip().lower() for r in roles))
    if not out:
        raise TeamError("give at least one --role (e.g. --role approver)")
    bad = [r for r in out if not ROLE.fullmatch(r)]
    if bad:
        raise TeamError(f"role {bad[0]!r} is not a plain lower-case word (a-z, 0-9, - and _)")
    return out


def eligible(roles: Sequence[str], approval: Any) -> str | None:
    """Why a person with `roles` may not decide a call held under `approval` (its rules'
    `approvers`: one list of roles per rule, each needing one of its roles), or None.
    No `approvers`: the `approver` role is needed."""
    groups = _groups(approval)
    if not groups:
        return None if APPROVER in roles else f"only people with the role {APPROVER!r} may decide held calls"
    for group in groups:
        if not set(group) & set(roles):
            return f"this call's rule wants an approver with the role {' or '.join(group)}"
    return None


def approval_of(held: Any) -> Any:
    """A held call's approval requirements: `held.requirements` (policy helper, #15) or the
    `team.approval` its presentation carries; None when it has none (the `approver` role decides)."""
    found = getattr(held, "requirements", None)
    if found is not None:
        return found
    shown = getattr(held, "presentation", None)
    team = shown.get("team") if isinstance(shown, Mapping) else None
    return team.get("approval") if isinstance(team, Mapping) else None


def _groups(approval: Any) -> list[list[str]]:
    """The `approvers` groups of a held row's approval requirements (a dict, JSON, or an object
    with `.approvers`), as lists of roles. Malformed requirements allow nobody (fail closed)."""
    if approval is None:
        return []
    if isinstance(approval, str):
        try:
            approval = json.loads(approval)
        except json.JSONDecodeError:
            return [["signoff:no-one"]]
    value = approval.get("approvers") if isinstance(approval, Mapping) else getattr(approval, "approvers", None)
    if not value:
        return []
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [list(value)]  # one rule's flat list: `approvers: [finance, cfo]`
    try:
        return [[str(r) for r in group] for group in value if group]
    except TypeError:
        return [["signoff:no-one"]]


def team_mode(store: Any) -> bool:
    """Someone was added (`signoff user add`): decisions need a named person."""
    return bool(store.list_users())


class People:
    """The team's people, over a `Store` (SQLite or PostgreSQL: the same plain rows)."""

    def __init__(self, store: Any):
        self.store = store
        from argon2 import PasswordHasher

        self.hasher = PasswordHasher()
        self._dummy: str | None = None

    # ------------------------------------------------------------------ people

    def add(self, name: str, roles: Iterable[str], password: str, *, totp: bool = True, by: str = "") -> str | None:
        """Add a person; returns their new TOTP secret (None with `totp=False`: a passkey follows)."""
        if not NAME.fullmatch(name):
            raise TeamError(f"name {name!r}: use letters, digits, '.', '-' or '_' (up to 64)")
        roles = check_roles(roles)
        if len(password) < MIN_PASSWORD:
            raise TeamError(f"the password must be at least {MIN_PASSWORD} characters")
        import pyotp

        secret = pyotp.random_base32() if totp else None
        try:
            self.store.add_user(
                {
                    "name": name,
                    "roles": json.dumps(list(roles)),
                    "password_hash": self.hasher.hash(password),
                    "totp_secret": secret,
                    "passkeys": "[]",
                    "created": time.time(),
                    "created_by": by,
                }
            )
        except StoreError as exc:
            raise TeamError(str(exc)) from exc
        return secret

    def change(
        self, name: str, *, roles: Iterable[str] | None = None, password: str | None = None, new_totp: bool = False
    ) -> str | None:
        """Change a person's roles, password or TOTP secret (lost phone); returns the new secret."""
        self.require(name)
        changes: dict[str, Any] = {}
        if roles is not None:
            changes["roles"] = json.dumps(list(check_roles(roles)))
        if password is not None:
            if len(password) < MIN_PASSWORD:
                raise TeamError(f"the password must be at least {MIN_PASSWORD} characters")
            changes["password_hash"] = self.hasher.hash(password)
        secret = None
        if new_totp:
            import pyotp

            secret = changes["totp_secret"] = pyotp.random_base32()
        if not changes:
            raise TeamError("nothing to change: give --role, --password(-stdin) or --new-totp")
        self.store.update_user(name, changes)
        return secret

    def get(self, name: str) -> Person | None:
        row = self.store.get_user(name)
        return None if row is None else _person(row)

    def row(self, name: str) -> dict[str, Any] | None:
        """The stored row (with the hashes and TOTP secret): for checking factors only."""
        return self.store.get_user(name)

    def all(self) -> list[Person]:
        return [_person(r) for r in self.store.list_users()]

    def any(self) -> bool:
        return team_mode(self.store)

    def remove(self, name: str) -> None:
        """Remove a person: their sessions end at their next request, their tokens stop working."""
        if not self.store.remove_user(name):
            raise TeamError(f"no person named {name!r} (see `signoff user list`)")

    def require(self, name: str) -> Person:
        person = self.get(name)
        if person is None:
            raise TeamError(f"no person named {name!r} (see `signoff user list`)")
        return person

    # ------------------------------------------------------------------ passwords

    def check_password(self, name: str, password: str) -> Person | None:
        """The person, if `password` is theirs. An unknown name costs the same hashing time."""
        from argon2.exceptions import InvalidHashError, VerificationError

        row = self.store.get_user(name)
        stored = row["password_hash"] if row else self._dummy_hash()
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if self.hasher.check_needs_rehash(stored):  # argon2 parameters were raised since
            self.store.update_user(name, {"password_hash": self.hasher.hash(password)})
        return _person(row)

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    # ------------------------------------------------------------------ tokens and enrolment links

    def new_token(self, name: str) -> str:
        """A CLI token for `name` (`signoff approve --token`), shown once, stored hashed."""
        self.require(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.store.add_user_secret(
            {"hash": secret_hash(token), "name": name, "kind": "token", "created": time.time(), "expires": None}
        )
        return token

    def by_token(self, token: str | None) -> Person | None:
        """The person a CLI token names, or None (unknown token, or the person was removed)."""
        if not token or not token.startswith(TOKEN_PREFIX):
            return None
        row = self.store.user_secret(secret_hash(token.strip()), "token", time.time())
        return None if row is None else self.get(row["name"])

    def new_enrolment(self, name: str, ttl: float = ENROL_TTL) -> str:
        """A one-time token for the page's passkey enrolment link (`/enrol/<token>`)."""
        self.require(name)
        token = secrets.token_urlsafe(24)
        now = time.time()
        self.store.add_user_secret(
            {"hash": secret_hash(token), "name": name, "kind": "enrol", "created": now, "expires": now + ttl}
        )
        return token

    def enrolment(self, token: str, *, spend: bool = False) -> Person | None:
        """Whose enrolment link this is (None: unknown, expired or used); `spend` uses it up."""
        row = self.store.user_secret(secret_hash(token), "enrol", time.time(), spend=spend)
        return None if row is None else self.get(row["name"])

    def add_passkey(self, name: str, passkey: Mapping[str, Any]) -> None:
        person = self.require(name)
        self.store.update_user(name, {"passkeys": json.dumps([*person.passkeys, dict(passkey)])})

    def passkey_used(self, name: str, credential_id: str, sign_count: int) -> None:
        person = self.require(name)
        keys = [{**k, "sign_count": sign_count} if k["id"] == credential_id else dict(k) for k in person.passkeys]
        self.store.update_user(name, {"passkeys": json.dumps(keys)})
