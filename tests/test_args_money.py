"""Amounts as tools spell them; an amount that cannot be read holds the call, never errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from policy_helpers import call
from signoff.policy.engine import Policy
from signoff.policy.understand import money


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (150, "major", ("150", None)),
        (150.5, "major", ("150.5", None)),
        ("150", "major", ("150", None)),
        ("$150.00", "major", ("150.00", "USD")),
        ("1,500", "major", ("1500", None)),
        ("€20", "major", ("20", "EUR")),
        ("20 EUR", "major", ("20", "EUR")),
        ("USD 2,500.00", "major", ("2500.00", "USD")),
        ({"value": "20.00", "currency_code": "USD"}, "major", ("20.00", "USD")),  # PayPal
        ({"amount": 250000, "currency": "usd"}, "minor", ("2500", "USD")),  # Stripe cents
        ({"amount_money": {"amount": 1500, "currency": "USD"}}, "minor", ("15", "USD")),  # Square
        ({"amount": 5000, "currency": "jpy"}, "minor", ("5000", "JPY")),  # zero-decimal currency
    ],
)
def test_amounts_are_read(value, unit: str, expected) -> None:
    found = money.parse(value, unit=unit)
    assert found is not None and found.value == Decimal(expected[0]) and found.currency == expected[1]


@pytest.mark.parametrize(
    "value", ["1.500,00", "about 20", "twenty", float("nan"), float("inf"), True, None, [1], {"x": 1}, "$", "1e9"]
)
def test_unreadable_amounts_are_none(value) -> None:
    assert money.parse(value) is None


POLICY = Policy.from_text("hitl_policies:\n  - action: purchase\n    condition: amount > 100\n", source="p.yaml")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"amount": 99}, "allow"),
        ({"amount": 150}, "ask"),
        ({"amount": "$150.00"}, "ask"),
        ({"amount": "1,500"}, "ask"),
        ({"amount": "$99.99"}, "allow"),
        ({"amount": {"value": "250.00", "currency_code": "USD"}}, "ask"),
        ({"amount": "lots"}, "ask"),  # unreadable: held
        ({"amount": "1.500,00"}, "ask"),
        ({}, "ask"),  # no amount: held
    ],
)
def test_amount_conditions(args: dict, expected: str) -> None:
    decision = POLICY.evaluate(call("shop.checkout", args))
    assert decision.verdict.value == expected
    if expected == "ask" and "lots" in str(args):
        assert "could not be read" in decision.reason and "Error" not in decision.reason


def test_the_reason_says_the_amount() -> None:
    decision = POLICY.evaluate(call("shop.checkout", {"amount": "$2,500.00"}))
    assert decision.reason == "buys for 2,500.00 USD"
    assert any(f.kind == "amount" and f.text == "2,500.00 USD" for f in decision.facts)
