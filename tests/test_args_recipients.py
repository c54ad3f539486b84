"""Recipients: internal only if every one is a well-formed address at an internal domain."""

from __future__ import annotations

import pytest

from policy_helpers import call, verdict
from signoff.policy.engine import Policy
from signoff.policy.understand import recipients

INTERNAL = ("company.com",)


@pytest.mark.parametrize(
    ("value", "external"),
    [
        ("ann@company.com", False),
        ("ann@eu.company.com", False),
        ("Ann <ann@company.com>", False),
        ('"Doe, Ann" <ann@company.com>, bob@company.com', False),  # a comma inside a quoted display name
        ("ann@company.com; bob@company.com", False),
        (["ann@company.com", ["bob@company.com"]], False),  # nested lists
        ({"emailAddress": {"address": "ann@company.com"}}, False),  # Microsoft Graph
        ([{"email": "ann@company.com", "name": "Ann"}], False),  # SendGrid
        ("ann@company.com, eve@evil.example", True),
        ('"ann@company.com" <eve@evil.example>', True),  # the display name is not the address
        ("eve@[10.0.0.1]", True),  # IP literal
        ("eve@127.0.0.1", True),
        ("root@localhost", True),
        ("ann@cоmpany.com", True),  # Cyrillic о: a look-alike, not company.com
        ("ann@xn--cmpany-wqf.com", True),
        ("ann@company.com.evil.example", True),
        ("ann@company.com@evil.example", True),  # unparseable
        ("not an address", True),
        ({"weird": "ann@company.com"}, True),  # an object we cannot read
        ([], True),  # nobody: unknown counts as external
        (12, True),
    ],
)
def test_internal_only_if_every_recipient_is(value, external: bool) -> None:
    assert recipients.any_external(recipients.collect(value), INTERNAL) is external


POLICY = Policy.from_text(
    "internal_domains: [company.com]\nhitl_policies:\n  - action: send_email\n    condition: recipient_is_external\n",
    source="p.yaml",
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"to": "ann@company.com"}, "allow"),
        ({"to": "ann@company.com", "cc": "bob@company.com", "bcc": ["eve@evil.example"]}, "ask"),  # every field
        ({"to": ["ann@company.com"], "bcc": "eve@evil.example"}, "ask"),
        ({"message": {"to": [{"email": "eve@evil.example"}]}}, "ask"),  # nested
        ({"to": "Ann <ann@company.com>"}, "allow"),
        ({"to": "root@localhost"}, "ask"),
        ({"subject": "hi"}, "ask"),  # no recipient at all: external
    ],
)
def test_send_email_rules_see_every_recipient(args: dict, expected: str) -> None:
    assert verdict(POLICY, call("gmail.send_email", args)) == expected


def test_the_reason_names_the_external_recipient() -> None:
    decision = POLICY.evaluate(call("gmail.send_email", {"to": "ann@company.com", "bcc": "eve@evil.example"}))
    assert decision.reason == "sends email to ann@company.com (internal), eve@evil.example (external)"
    assert [(f.kind, f.text, f.risky) for f in decision.facts if f.kind == "recipient"] == [
        ("recipient", "ann@company.com (internal)", False),
        ("recipient", "eve@evil.example (external)", True),
    ]
