"""Amounts of money as tools spell them: 150, "150.00", "$150.00", "1,500", "€20", "20 EUR",
{"value": "20.00", "currency_code": "USD"} (PayPal), {"amount": 2000, "currency": "usd"} in
minor units (Stripe, Square's amount_money). Anything ambiguous (`1.500,00`, "about 20",
NaN) is unreadable: the caller treats it as over every limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

SYMBOLS = {
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "₩": "KRW",
    "₽": "RUB",
    "₺": "TRY",
    "₪": "ILS",
    "฿": "THB",
    "₫": "VND",
    "₦": "NGN",
    "₱": "PHP",
    "R$": "BRL",
    "C$": "CAD",
    "A$": "AUD",
    "US$": "USD",
}
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
"""Currencies whose minor unit is the unit itself (Stripe's zero-decimal list)."""
_TEXT = re.compile(
    r"^\s*(?P<pre>[A-Za-z]{3}|US\$|[A-Z]?\$|[€£¥₹₩₽₺₪฿₫₦₱])?\s*(?P<sign>[-+])?\s*"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)\s*(?P<post>[A-Za-z]{3}|[€£¥₹₩₽₺₪฿₫₦₱])?\s*$"
)
VALUE_KEYS = ("value", "amount", "total", "price", "unit_amount", "amount_value")
CURRENCY_KEYS = ("currency_code", "currency", "currencyCode", "curr")
MAX_DEPTH = 8


@dataclass(frozen=True)
class Amount:
    value: Decimal
    """In major units (dollars, euros)."""
    currency: str | None

    def __str__(self) -> str:
        try:
            text = f"{self.value:,.2f}" if self.value == self.value.quantize(Decimal("0.01")) else f"{self.value:,}"
        except InvalidOperation:  # beyond the decimal context's precision
            text = f"{self.value:,}"
        return f"{text} {self.currency}" if self.currency else text


def parse(value: Any, *, unit: str = "major", currency: str | None = None, depth: int = 0) -> Amount | None:
    """The amount in `value`, or None when it cannot be read for certain."""
    if depth > MAX_DEPTH or isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Mapping):
        return _from_object(value, unit, currency, depth)
    cur = currency
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        number = Decimal(repr(value))
    elif isinstance(value, str):
        match = _TEXT.match(value)
        if not match:
            return None
        for part in (match["pre"], match["post"]):
            if part:
                code = SYMBOLS.get(part) or (part.upper() if part.isalpha() else None)
                if code is None:
                    return None
                if cur and cur.upper() != code and part is not None and cur is not currency:
                    return None
                cur = code
        try:
            number = Decimal(match["num"].replace(",", ""))
        except InvalidOperation:
            return None
        if match["sign"] == "-":
            number = -number
    else:
        return None
    cur = cur.upper() if isinstance(cur, str) else None
    if unit == "minor" and (cur or "") not in ZERO_DECIMAL:
        number = number / 100
    return Amount(number, cur)


def _from_object(value: Mapping[str, Any], unit: str, currency: str | None, depth: int) -> Amount | None:
    cur = next((value[k] for k in CURRENCY_KEYS if isinstance(value.get(k), str)), currency)
    for key in VALUE_KEYS:
        if key in value:
            return parse(value[key], unit=unit, currency=cur, depth=depth + 1)
    for key in ("amount_money", "money", "price_money", "total_money"):  # Square
        if key in value:
            return parse(value[key], unit=unit, currency=cur, depth=depth + 1)
    return None


def total(values: list[Any], *, unit: str = "major", currency: str | None = None) -> Amount | None:
    """The sum of several amounts (a cart's items), or None if any is unreadable or currencies differ."""
    amounts = [parse(v, unit=unit, currency=currency) for v in values]
    if not amounts or any(a is None for a in amounts):
        return None
    currencies = {a.currency for a in amounts if a and a.currency}
    if len(currencies) > 1:
        return None
    return Amount(sum((a.value for a in amounts if a), Decimal(0)), next(iter(currencies), None))
