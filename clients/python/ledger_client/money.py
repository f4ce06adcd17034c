"""Exact money: amounts as int minor units, or Decimal / str major units at the asset's scale.

- `int` is minor units (cents for USD at scale 2): `1250` is 12.50 USD.
- `decimal.Decimal` or `str` is major units, converted exactly: `"12.5"` or `Decimal("12.50")` at
  scale 2 is 1250. A value with more decimal places than the scale is refused, never rounded
  (`"0.001"` USD is an error), as are signs, exponents in strings, NaN and infinities.
- `float` is refused: binary floating point cannot hold 0.1, and money never passes through it.
- `bool` is refused too, although Python counts it as an int.

Client-side refusals raise `TypeError` (wrong type) or `InvalidAmount` (a value the ledger would
refuse), the same class the server's INVALID_AMOUNT maps to.
"""

from __future__ import annotations

import re
from decimal import Decimal

import grpc

from ledger_client.errors import InvalidAmount

U128_MAX = (1 << 128) - 1  # the largest amount or counter the ledger stores
SCALE_MAX = 18
_MAJOR_TEXT = re.compile(r"[0-9]{1,60}(?:\.[0-9]{1,60})?")

Amount = int | Decimal | str
"""An amount as callers pass it: int minor units, or Decimal / str major units."""

FLOAT_REFUSED = (
    "amounts are never floats: pass an int of minor units (1250) or a Decimal / str of major units "
    '(Decimal("12.50") or "12.50")'
)


def _invalid(message: str, field: str) -> InvalidAmount:
    metadata = {"field": field, "source": "client"}
    return InvalidAmount(message, code=grpc.StatusCode.INVALID_ARGUMENT, metadata=metadata)


def check_amount_type(amount: object, field: str = "amount") -> None:
    """TypeError for anything but int, Decimal and str (float and bool in particular)."""
    if isinstance(amount, bool):
        raise TypeError(f"{field}: a bool is not an amount")
    if isinstance(amount, float):
        raise TypeError(f"{field}: {FLOAT_REFUSED}")
    if not isinstance(amount, int | Decimal | str):
        got = type(amount).__name__
        raise TypeError(f"{field}: expected int (minor units), Decimal or str (major units), got {got}")


def needs_scale(amount: Amount) -> bool:
    """Whether converting this amount needs the asset's scale (only major units do)."""
    check_amount_type(amount)
    return not isinstance(amount, int)


def to_minor_units(amount: Amount, scale: int | None, field: str = "amount") -> int:
    """The exact positive minor-unit integer an amount denotes (scale is needed for Decimal / str)."""
    check_amount_type(amount, field)
    if isinstance(amount, int):
        value = amount
    else:
        if scale is None:
            raise ValueError(f"{field}: converting major units needs the asset's scale")
        value = _major_to_minor(amount, scale, field)
    if value <= 0:
        raise _invalid(f"{field} must be greater than zero", field)
    if value > U128_MAX:
        raise _invalid(f"{field} exceeds 2^128-1 minor units", field)
    return value


def _major_to_minor(amount: Decimal | str, scale: int, field: str) -> int:
    if not 0 <= scale <= SCALE_MAX:
        raise ValueError(f"scale must be 0..{SCALE_MAX}, got {scale}")
    if isinstance(amount, str):
        if not _MAJOR_TEXT.fullmatch(amount):
            raise _invalid(f"{field}: {amount[:40]!r} is not a plain decimal number like 12.50", field)
        amount = Decimal(amount)
    if not amount.is_finite():
        raise _invalid(f"{field} must be a finite number", field)
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > 80:
        raise _invalid(f"{field} has too many digits", field)
    coefficient = int("".join(map(str, digits)) or "0")
    if sign and coefficient:
        raise _invalid(f"{field} must not be negative", field)
    shift = exponent + scale
    if coefficient == 0:
        return 0
    if shift >= 0:
        if len(digits) + shift > 40:  # beyond 2^128 whatever the digits; avoid building huge ints
            raise _invalid(f"{field} exceeds 2^128-1 minor units", field)
        return coefficient * _power_of_ten(shift)
    if -shift > len(digits) or coefficient % _power_of_ten(-shift):
        raise _invalid(f"{field} {amount} has more than {scale} decimal places for this asset", field)
    return coefficient // _power_of_ten(-shift)


def _power_of_ten(exponent: int) -> int:
    assert 0 <= exponent <= 120, exponent
    return int("1" + "0" * exponent)


def to_major_units(minor: int, scale: int) -> Decimal:
    """The exact Decimal of a minor-unit amount or balance (signed values allowed)."""
    assert isinstance(minor, int) and not isinstance(minor, bool), minor
    assert 0 <= scale <= SCALE_MAX, scale
    digits = tuple(int(d) for d in str(abs(minor)))
    return Decimal((1 if minor < 0 else 0, digits, -scale))


def format_major(minor: int, scale: int) -> str:
    """Minor units as a major-unit string with exactly `scale` decimals: 1250 at scale 2 is "12.50"."""
    return f"{to_major_units(minor, scale):f}"


def parse_wire_amount(text: str) -> int:
    """A wire amount or counter ("1250", "-250" for changes) as an int; empty means zero."""
    if text == "":
        return 0
    if not re.fullmatch(r"-?[0-9]{1,40}", text):
        raise ValueError(f"not a wire amount: {text[:40]!r}")
    return int(text)
