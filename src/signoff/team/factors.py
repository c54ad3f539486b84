"""Signing a person in: password and TOTP code, or a WebAuthn passkey (py_webauthn).

TOTP codes are accepted within one 30 s step either side and never twice: the store keeps each
person's last used step (`advance_totp`, a compare-and-set), so a watched code cannot be
replayed, not even on another page process. Wrong passwords and codes are throttled per client
and overall (team/throttle.py). Passkey challenges are single use and short-lived; the challenge
a browser signed is read back from its clientDataJSON and must be one this process issued.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from signoff.team.throttle import Throttle
from signoff.team.users import People, Person

TOTP_STEP = 30
CHALLENGE_TTL = 120.0
MAX_CHALLENGES = 1024


def totp_uri(secret: str, name: str) -> str:
    import pyotp

    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="signoff")


def totp_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step `code` is valid for (this one or a neighbour), or None."""
    import pyotp

    code = (code or "").strip()
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if now is None else now
    for offset in (0, -1, 1):
        at = now + offset * TOTP_STEP
        if hmac.compare_digest(totp.at(at), code):
            return int(at // TOTP_STEP)
    return None


@dataclass(frozen=True)
class Verdict:
    """A sign-in attempt's answer: the person, or why not (and how long to wait, if throttled)."""

    person: Person | None
    problem: str = ""
    wait: float = 0.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SignIn:
    """Checks factors for the page: password + TOTP, or a passkey; throttles wrong tries."""

    def __init__(self, people: People, throttle: Throttle | None = None):
        self.people = people
        self.throttle = throttle or Throttle()
        self._challenges: OrderedDict[str, tuple[str, str, float]] = OrderedDict()  # b64 -> (purpose, name, expires)
        self._lock = threading.Lock()

    def _locked(self, client: str) -> Verdict | None:
        wait = self.throttle.retry_after(client)
        if wait > 0:
            return Verdict(None, f"too many failed sign-ins: try again in {math.ceil(wait)} s", wait)
        return None

    def _failed(self, client: str, problem: str) -> Verdict:
        self.throttle.failed(client)
        return Verdict(None, problem)

    def with_password(self, name: str, password: str, code: str, client: str) -> Verdict:
        """Name + password + the current TOTP code (a person enrolled without TOTP uses a passkey)."""
        locked = self._locked(client)
        if locked:
            return locked
        person = self.people.check_password(name, password)
        if person is None:
            return self._failed(client, "wrong name or password")
        row = self.people.row(name)
        secret = row.get("totp_secret") if row else None
        if not secret:
            return self._failed(client, "this person signs in with a passkey")
        step = totp_step(secret, code)
        if step is None or not self.people.store.advance_totp(name, step):
            return self._failed(client, "wrong or reused TOTP code")
        self.throttle.succeeded(client)
        return Verdict(person)

    # ------------------------------------------------------------------ passkeys

    def _challenge(self, purpose: str, name: str) -> bytes:
        challenge = secrets.token_bytes(32)
        now = time.monotonic()
        with self._lock:
            for key in [k for k, v in self._challenges.items() if v[2] < now]:
                del self._challenges[key]
            self._challenges[b64url(challenge)] = (purpose, name, now + CHALLENGE_TTL)
            while len(self._challenges) > MAX_CHALLENGES:
                self._challenges.popitem(last=False)
        return challenge

    def _spend_challenge(self, credential: dict[str, Any], purpose: str) -> tuple[bytes, str] | None:
        """The challenge the browser signed, if this process issued it for `purpose` (once)."""
        try:
            client_data = json.loads(unb64url(credential["response"]["clientDataJSON"]))
            key = str(client_data["challenge"])
        except (KeyError, TypeError, ValueError):
            return None
        with self._lock:
            found = self._challenges.pop(key, None)
        if found is None or found[0] != purpose or found[2] < time.monotonic():
            return None
        return unb64url(key), found[1]

    def registration_options(self, person: Person, rp_id: str) -> str:
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        options = generate_registration_options(
            rp_id=rp_id,
            rp_name="signoff",
            user_name=person.name,
            user_id=person.name.encode(),
            challenge=self._challenge("register", person.name),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=unb64url(k["id"])) for k in person.passkeys],
        )
        return options_to_json(options)

    def register(self, person: Person, credential: dict[str, Any], rp_id: str, origin: str) -> str | None:
        """Verify a new passkey and keep it; None when done, else why it was refused."""
        from webauthn import verify_registration_response
        from webauthn.helpers.exceptions import InvalidRegistrationResponse

        spent = self._spend_challenge(credential, "register")
        if spent is None or spent[1] != person.name:
            return "this enrolment expired or was not started here: reload the page"
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=spent[0],
                expected_rp_id=rp_id,
                expected_origin=origin,
                require_user_verification=True,
            )
        except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
            return f"the passkey was refused: {exc}"
        self.people.add_passkey(
            person.name,
            {
                "id": b64url(verified.credential_id),
                "public_key": b64url(verified.credential_public_key),
                "sign_count": verified.sign_count,
                "created": time.time(),
            },
        )
        return None

    def authentication_options(self, rp_id: str) -> str:
        """Options for a discoverable passkey: the browser offers this site's passkeys."""
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers.structs import UserVerificationRequirement

        options = generate_authentication_options(
            rp_id=rp_id, challenge=self._challenge("sign-in", ""), user_verification=UserVerificationRequirement.REQUIRED
        )
        return options_to_json(options)

    def with_passkey(self, credential: dict[str, Any], rp_id: str, origin: str, client: str) -> Verdict:
        from webauthn import verify_authentication_response
        from webauthn.helpers.exceptions import InvalidAuthenticationResponse

        locked = self._locked(client)
        if locked:
            return locked
        spent = self._spend_challenge(credential, "sign-in")
        if spent is None:
            return Verdict(None, "this sign-in expired or was not started here: try again")
        try:
            name = unb64url(credential["response"]["userHandle"]).decode()
            person = self.people.get(name)
            key = next(k for k in person.passkeys if k["id"] == credential["id"]) if person else None
        except (KeyError, TypeError, ValueError, StopIteration):
            key = person = None
        if person is None or key is None:
            return self._failed(client, "this passkey belongs to nobody here")
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=spent[0],
                expected_rp_id=rp_id,
                expected_origin=origin,
                credential_public_key=unb64url(key["public_key"]),
                credential_current_sign_count=key["sign_count"],
                require_user_verification=True,
            )
        except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
            return self._failed(client, f"the passkey was refused: {exc}")
        self.people.passkey_used(person.name, key["id"], verified.new_sign_count)
        self.throttle.succeeded(client)
        return Verdict(person)
