"""URL hosts read as WHATWG clients read them (ada-url); `domains:` and `url_is_external` use them."""

from __future__ import annotations

import pytest

from policy_helpers import call, verdict
from signoff.policy.engine import Policy
from signoff.policy.understand import urls


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("https://production.api.company.com/v1", "production.api.company.com"),
        ("https://PRODUCTION.api.company.com./v1", "production.api.company.com"),  # case and trailing dot
        ("https://user:pw@evil.example@production.api.company.com/", "production.api.company.com"),  # userinfo
        ("http://good.example\\@production.api.company.com/", "good.example"),  # a backslash ends the host for browsers
        ("https://ｐｒｏｄｕｃｔｉｏｎ.api.company.com/", "production.api.company.com"),  # fullwidth letters
        ("https://production。api。company。com/", "production.api.company.com"),  # ideographic full stops
        ("https://%70roduction.api.company.com/", "production.api.company.com"),  # percent-encoding
        ("http://2130706433/", "127.0.0.1"),  # decimal IPv4
        ("http://0x7f.0.0.1/", "127.0.0.1"),  # hex
        ("http://0177.0.0.1/", "127.0.0.1"),  # octal
        ("http://[::ffff:7f00:1]/", "127.0.0.1"),  # IPv4-mapped IPv6
        ("http://bücher.example/", "xn--bcher-kva.example"),  # IDNA
        ("production.api.company.com/v1", "production.api.company.com"),  # a bare host under a url-like key
        ("localhost:8080", "localhost"),
        ("http://exa mple.com/", urls.UNPARSEABLE),
        ("http://[::zz]/", urls.UNPARSEABLE),
    ],
)
def test_hosts_as_a_browser_reads_them(value: str, host: str) -> None:
    assert urls.host_of_value(value) == host


DOMAINS = Policy.from_text(
    "internal_domains: [company.com]\nhitl_policies:\n"
    "  - action: api_call\n    domains: [production.api.company.com, '127.0.0.1', '*.stripe.com']\n",
    source="p.yaml",
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"url": "https://PRODUCTION.api.company.com./x"}, "ask"),
        ({"url": "https://a@b@production.api.company.com/x"}, "ask"),
        ({"url": "https://ｐｒｏｄｕｃｔｉｏｎ.api.company.com/"}, "ask"),
        ({"url": "http://0x7f.1/admin"}, "ask"),
        ({"url": "http://[::ffff:127.0.0.1]/"}, "ask"),
        ({"url": "https://api.stripe.com/v1/charges"}, "ask"),
        ({"url": "http://exa mple.com/"}, "ask"),  # unparseable: matches every domains list
        ({"url": "https://docs.python.org"}, "allow"),
        ({"host": "production.api.company.com"}, "ask"),  # a bare hostname in a host field
        ({"url": "http://production.api.company.com.evil.example/"}, "allow"),
    ],
)
def test_domains_rules_use_normalised_hosts(args: dict, expected: str) -> None:
    assert verdict(DOMAINS, call("fetch.fetch", args)) == expected


def test_url_is_external_compares_normalised_hosts() -> None:
    policy = Policy.from_text(
        "internal_domains: [company.com]\nhitl_policies:\n  - tool: 'fetch.*'\n    condition: url_is_external\n", source="p.yaml"
    )
    assert verdict(policy, call("fetch.fetch", {"url": "https://wiki.COMPANY.com./x"})) == "allow"
    assert (
        verdict(policy, call("fetch.fetch", {"url": "https://wiki.company.com\\@evil.example/"})) == "allow"
    )  # host: wiki.company.com
    assert verdict(policy, call("fetch.fetch", {"url": "https://company.com.evil.example/"})) == "ask"
    assert verdict(policy, call("fetch.fetch", {"url": "https://cоmpany.com/"})) == "ask"  # Cyrillic о
    assert verdict(policy, call("fetch.fetch", {"url": "http://exa mple.com/"})) == "ask"
