"""Who a message goes to: every address in to/cc/bcc, however the arguments spell it.

A message is internal only if every recipient is a well-formed address at an internal domain.
Anything else counts as external: an address that does not parse, an IP literal
(`a@[10.0.0.1]`), `localhost`, a look-alike domain (IDNA-normalised, so `cоmpany.com` with a
Cyrillic о is not `company.com`), or a recipient field that is present but unreadable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from signoff.policy.understand import urls

MAX_DEPTH = 16
RECIPIENT_KEYS = frozenset(
    {
        "to",
        "cc",
        "bcc",
        "recipient",
        "recipients",
        "to_address",
        "to_addresses",
        "toaddresses",
        "cc_address",
        "bcc_address",
        "toemail",
        "to_email",
        "emails",
        "email_to",
        "torecipients",
        "ccrecipients",
        "bccrecipients",
        "destination",
        "destinations",
        "personalizations",
        "email_addresses",
        "attendees",
        "invitees",
    }
)
"""Argument keys that carry recipients when the catalog says nothing about the tool."""
_ADDRESS_KEYS = ("email", "address", "emailAddress", "email_address", "value", "addr")
_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+$")
_DOMAIN_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_EMAIL_IN_TEXT = re.compile(r"[^\s<>(),;:\"']+@[^\s<>(),;:\"']+")


@dataclass(frozen=True)
class Recipient:
    text: str
    address: str | None
    """`local@domain` with the domain normalised, or None when it does not parse."""
    domain: str | None

    def external(self, internal: tuple[str, ...]) -> bool:
        if self.domain is None or self.domain == "localhost" or _is_ip(self.domain):
            return True
        return not urls.is_internal(self.domain, internal)

    def label(self, internal: tuple[str, ...], external: bool | None = None) -> str:
        shown = self.address or self.text[:80]
        if self.address is None:
            return f"{shown} (unreadable: counts as external)"
        outside = self.external(internal) if external is None else external
        return f"{shown} ({'external' if outside else 'internal'})"


def parse_address(text: str, address: str | None = None) -> Recipient:
    """One address, bare or with a display name; the domain IDNA-normalised."""
    raw = text.strip()
    if address is None:
        pairs = getaddresses([raw])
        address = pairs[0][1] if len(pairs) == 1 else ""
    if not address or address.count("@") != 1 or "<" in address or ">" in address:
        return Recipient(raw, None, None)
    local, domain = address.rsplit("@", 1)
    if not local or not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return Recipient(raw, None, None)
    if domain.startswith("[") and domain.endswith("]"):
        return Recipient(raw, f"{local}@{domain}", domain)  # an IP literal: external
    host = urls.host_of_value(domain) if domain else None
    if not host or host == urls.UNPARSEABLE or any(not _DOMAIN_LABEL.match(label) for label in host.split(".")):
        if host and urls.is_ip(host):
            return Recipient(raw, f"{local}@{host}", host)
        return Recipient(raw, None, None)
    return Recipient(raw, f"{local}@{host}", host)


@functools.lru_cache(maxsize=4096)
def _is_ip(domain: str) -> bool:
    return domain.startswith("[") or urls.is_ip(domain)


MAX_LENGTH = 16_384


def split_addresses(text: str) -> list[Recipient]:
    if len(text) > MAX_LENGTH:  # not parsed (cost): one unreadable recipient, so the message counts as external
        return [Recipient(text[:80], None, None)]
    return list(_split(text))


@functools.lru_cache(maxsize=4096)
def _split(text: str) -> tuple[Recipient, ...]:
    """`"Bob, Jr." <b@x.com>, c@y.com; d@z.com` → the three recipients (quotes respected)."""
    parts = [p for p in getaddresses([text.replace(";", ",")]) if p != ("", "")]
    if not parts:
        return (parse_address(text, ""),)
    return tuple(parse_address(f"{name} <{addr}>" if name else addr or name, addr) for name, addr in parts)


def collect(value: Any, depth: int = 0) -> list[Recipient]:
    """Every recipient in a field's value: strings (comma lists), lists, `{email|address: …}` objects."""
    if depth > MAX_DEPTH:
        return [Recipient("<too deeply nested>", None, None)]
    if value is None:
        return []
    if isinstance(value, str):
        return split_addresses(value) if value.strip() else []
    if isinstance(value, Mapping):
        found: list[Recipient] = []
        for key in _ADDRESS_KEYS:
            if key in value:
                found.extend(collect(value[key], depth + 1))
        for key, inner in value.items():  # {"to": [...]} inside personalizations, {"emailAddress": {...}}
            if str(key).lower() in RECIPIENT_KEYS:
                found.extend(collect(inner, depth + 1))
        return found or [Recipient(str(dict(value))[:80], None, None)]
    if isinstance(value, (list, tuple)):
        return [r for item in value for r in collect(item, depth + 1)]
    return [Recipient(str(value)[:80], None, None)]


def in_text(texts: Iterable[str]) -> list[Recipient]:
    """Addresses mentioned anywhere (the fallback when no recipient field is known)."""
    return [parse_address(m) for text in texts if "@" in text for m in _EMAIL_IN_TEXT.findall(text)]


_CHANNEL = re.compile(r"^[#@]?[A-Za-z][A-Za-z0-9_.-]{0,79}$")


def is_channel(recipient: Recipient) -> bool:
    """A chat channel or user id (`C024BE91L`, `#general`, `@ann`): inside the workspace, not an address.
    Phone numbers and WhatsApp ids (digits) are outside."""
    return recipient.address is None and bool(_CHANNEL.match(recipient.text.strip()))


def any_external(recipients: list[Recipient], internal: tuple[str, ...]) -> bool:
    """True unless there is at least one recipient and every one is internal."""
    return not recipients or any(r.external(internal) for r in recipients)
