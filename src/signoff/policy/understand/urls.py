"""Hosts as WHATWG clients (browsers, Node's fetch) read them, via ada-url.

A URL parser that disagrees with the client making the request is a bypass
(`http://good.com\\@evil.com` goes to evil.com for a browser), so hosts are taken from ada's
parse, then normalised once more: IDNA/punycode (ada), no trailing dot, IPv4-mapped IPv6 as
IPv4. Text that looks like a URL but cannot be parsed yields UNPARSEABLE, which matches every
`domains:` list and is never internal.
"""

from __future__ import annotations

import functools
import ipaddress
import re

UNPARSEABLE = "<unparseable host>"
"""A host that could not be read: matches every domains list, counts as external."""

URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.-])(?:https?|wss?|ftp)://[^\s\"'<>`]+", re.IGNORECASE)
_BARE_HOST = re.compile(
    r"^(?:[^\s/?#@]+[.\u3002\uff0e\uff61][^\s/?#@]+|localhost|\[[0-9A-Fa-f:.]+\])(?::\d+)?(?:[/?#].*)?$", re.IGNORECASE
)
"""A bare host, maybe with a port and path: `api.example.com/x`, `localhost:8080`, fullwidth dots too."""
HOST_KEYS = frozenset(
    {
        "url",
        "uri",
        "urls",
        "host",
        "hostname",
        "domain",
        "endpoint",
        "base_url",
        "baseurl",
        "origin",
        "href",
        "link",
        "server",
        "address",
        "target_url",
        "webhook",
        "webhook_url",
        "callback_url",
    }
)


@functools.lru_cache(maxsize=8192)
def host_of(url: str) -> str:
    """The normalised host of an absolute URL, '' for URLs without one (mailto:), or UNPARSEABLE."""
    import ada_url

    try:
        parsed = ada_url.URL(url.strip())
    except ValueError:
        return UNPARSEABLE
    return normalize_host(parsed.hostname or "")


@functools.lru_cache(maxsize=8192)
def normalize_host(host: str) -> str:
    host = host.strip().lower()
    if not host:
        return ""
    if host.startswith("[") and host.endswith("]"):
        try:
            ip = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return UNPARSEABLE
        mapped = ip.ipv4_mapped
        return str(mapped) if mapped else str(ip)
    return host.rstrip(".") or UNPARSEABLE


@functools.lru_cache(maxsize=1024)
def normalize_domain(domain: str) -> str:
    """An `internal_domains`/`domains` entry in the same form as parsed hosts (IDNA, no dot)."""
    text = domain.strip().lower().lstrip("*.").rstrip(".")
    if not text or "*" in text or "?" in text:
        return text
    host = host_of("http://" + text)
    return text if host == UNPARSEABLE else host


def hosts_in_text(text: str) -> set[str]:
    """Hosts of every absolute URL mentioned in a string."""
    if "://" not in text:
        return set()
    return {host_of(url) for url in URL_IN_TEXT.findall(text)} - {""}


def host_of_value(text: str) -> str | None:
    """A value under a url/host-like key: a URL, or a bare host (`api.example.com/x`), or UNPARSEABLE."""
    value = text.strip()
    if not value:
        return None
    if "://" in value:
        return host_of(value) or None
    if value.startswith("//"):
        return host_of("http:" + value) or None
    if _BARE_HOST.match(value):
        return host_of("http://" + value) or None
    return None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_internal(host: str, internal: tuple[str, ...]) -> bool:
    """`host` is one of the internal domains or under one. Unparseable hosts never are."""
    if not host or host == UNPARSEABLE:
        return False
    return any(host == d or host.endswith("." + d) for d in internal if d)
