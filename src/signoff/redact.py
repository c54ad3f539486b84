"""Redaction of secret-looking values in what people and files see: audit rows, notifications,
the approval page's data. Never in what runs: the upstream gets the raw arguments and the policy
decides on them.

A value is hidden when its key names a secret (`password`, `api_key`, `Authorization`,
`client_secret`, `x-api-key`… matched case-insensitively by words, so `max_tokens` stays) or when
the string itself looks like one (a bearer/basic credential, a PEM private key, a JWT, well-known
token formats, a password inside a URL). On by default; `SIGNOFF_REDACT=off` (or `signoff run
--no-redact`) turns it off. `restore()` undoes the marker in arguments a person edited on a
redacted view, so an edit never sends `[redacted]` to the tool.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

MARK = "[redacted]"

_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "auth",
        "authorization",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "apikey",
        "bearer",
        "jwt",
        "otp",
        "totp",
    }
)
_ENDINGS = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
    "authkey",
    "signingkey",
    "encryptionkey",
    "sessionid",
    "sessionkey",
    "setcookie",
)

_VALUE = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)"  # PEM keys
    r"|\b(?:Bearer|Basic|Token|Digest)\s+[A-Za-z0-9._~+/=-]{8,}"  # Authorization header values
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})"  # known tokens
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",  # user:password@ in a URL
    re.DOTALL,
)


_QUERY = re.compile(
    r"(?<=[?&#])((?:access_|refresh_|id_)?token|api_?key|apikey|secret|client_secret|password|sig|"
    r"signature|code)=[^&\s#\"']+",
    re.IGNORECASE,
)
"""Secrets in URL query strings (`?token=…`), as in the approval page's own link."""


def enabled() -> bool:
    return os.environ.get("SIGNOFF_REDACT", "on").strip().lower() not in ("0", "off", "false", "no")


@lru_cache(maxsize=4096)
def secret_key(key: str) -> bool:
    """Does this argument name say its value is a secret? (`apiKey`, `X-Api-Key`, `db_password`…)"""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)  # camelCase → words
    words = [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]
    joined = "".join(words)
    return any(w in _WORDS for w in words) or joined.endswith(_ENDINGS)


def redact_text(text: str) -> str:
    """A string with secret-looking parts replaced by the marker."""
    if _VALUE.search(text):
        text = _VALUE.sub(MARK, text)
    if "=" in text and _QUERY.search(text):
        text = _QUERY.sub(lambda m: f"{m.group(1)}={MARK}", text)
    return text


def redact(value: Any) -> Any:
    """A copy of `value` (JSON-like) with secrets replaced by `[redacted]`; `value` is not changed."""
    if not enabled():
        return value
    return _redact(value)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: (MARK if _hidden(k, v) else _redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    return value


def _hidden(key: Any, value: Any) -> bool:
    """Strings and containers under a secret's name (a number such as `token_count: 3` stays)."""
    return isinstance(key, str) and isinstance(value, (str, Mapping, list, tuple)) and bool(value) and secret_key(key)


def redact_held(view: dict[str, Any]) -> dict[str, Any]:
    """A held call as serialised for the page: its arguments, edits and session history redacted."""
    if not enabled():
        return view
    out = dict(view)
    for name in ("arguments", "edited_arguments"):
        if out.get(name) is not None:
            out[name] = _redact(out[name])
    if out.get("session_history"):
        out["session_history"] = [_redact(item) for item in out["session_history"]]
    return out


def restore(edited: Any, original: Any) -> Any:
    """Edited arguments with every `[redacted]` put back to the original value at the same place
    (a person who edits a redacted view keeps the secret they could not see)."""
    if edited == MARK:
        return original
    if isinstance(edited, str) and MARK in edited and isinstance(original, str) and redact_text(original) == edited:
        return original
    if isinstance(edited, Mapping) and isinstance(original, Mapping):
        return {k: restore(v, original[k]) if k in original else v for k, v in edited.items()}
    if isinstance(edited, list) and isinstance(original, list) and len(edited) == len(original):
        return [restore(e, o) for e, o in zip(edited, original, strict=False)]
    return edited
