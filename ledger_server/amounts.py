"""Exact amounts: unsigned 128-bit integers in minor units, carried as decimal-digit strings."""

from __future__ import annotations

import re

U128_MAX = (1 << 128) - 1
_DIGITS = re.compile(r"[0-9]{1,78}")


def parse_amount(text: str) -> int:
    """Return the amount a wire string denotes; ValueError for anything but plain digits <= 2^128-1.

    Signs, spaces, decimal points, exponents and non-ASCII digits are all refused: money never passes
    through float or a locale.
    """
    if not _DIGITS.fullmatch(text):
        raise ValueError("amount must be a string of decimal digits")
    value = int(text)
    if value > U128_MAX:
        raise ValueError("amount exceeds 2^128-1")
    return value


def format_amount(value: int) -> str:
    """The wire form of a counter or amount (asserts it is a valid u128: an impossible state otherwise)."""
    assert isinstance(value, int) and not isinstance(value, bool), value
    assert 0 <= value <= U128_MAX, value
    return str(value)


def format_change(value: int) -> str:
    """The wire form of a signed counter change."""
    assert -U128_MAX <= value <= U128_MAX, value
    return str(value)
