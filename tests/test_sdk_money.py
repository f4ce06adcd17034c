"""Money helpers: exact conversions at the asset's scale, never a float, never a rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_client import errors
from ledger_client.money import U128_MAX, format_major, to_major_units, to_minor_units

SCALES = st.integers(0, 18)
AMOUNTS = st.integers(1, U128_MAX)


@given(minor=AMOUNTS, scale=SCALES)
def test_major_units_round_trip_exactly(minor: int, scale: int) -> None:
    text = format_major(minor, scale)
    assert to_minor_units(text, scale) == minor
    assert to_minor_units(Decimal(text), scale) == minor
    assert to_minor_units(to_major_units(minor, scale), scale) == minor
    assert to_minor_units(minor, None) == minor


@given(minor=AMOUNTS, scale=st.integers(0, 17), extra=st.integers(1, 9))
def test_a_digit_beyond_the_scale_is_refused_not_rounded(minor: int, scale: int, extra: int) -> None:
    text = format_major(minor, scale + 1)[:-1] + str(extra)  # one more decimal than the asset has
    with pytest.raises(errors.InvalidAmount, match="decimal places"):
        to_minor_units(text, scale)


@given(minor=AMOUNTS, scale=SCALES, zeros=st.integers(1, 5))
def test_trailing_zeros_beyond_the_scale_are_exact(minor: int, scale: int, zeros: int) -> None:
    text = format_major(minor, scale)
    padded = text + ("." if scale == 0 else "") + "0" * zeros
    assert to_minor_units(padded, scale) == minor


@pytest.mark.parametrize(
    ("value", "scale", "minor"),
    [
        ("12.50", 2, 1250),
        ("12.5", 2, 1250),
        ("12", 2, 1200),
        (Decimal("0.01"), 2, 1),
        (Decimal("1E+2"), 2, 10000),
        ("0.000000000000000001", 18, 1),
        (7, 2, 7),
        ("340282366920938463463374607431768211455", 0, U128_MAX),
    ],
)
def test_examples(value: str | Decimal | int, scale: int, minor: int) -> None:
    assert to_minor_units(value, scale) == minor


@pytest.mark.parametrize("value", [12.5, 0.1, float("nan"), 1e3])
def test_floats_are_refused_with_a_clear_message(value: float) -> None:
    with pytest.raises(TypeError, match="never floats"):
        to_minor_units(value, 2)  # type: ignore[arg-type]


def test_bool_is_not_an_int_here() -> None:
    with pytest.raises(TypeError, match="bool"):
        to_minor_units(True, 2)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-1",
        "+1",
        "1e2",
        "1,000.00",
        " 1",
        "1.",
        ".5",
        "١٢",
        "NaN",
        "Infinity",
        "0",
        "0.00",
        Decimal("-1"),
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("0"),
        0,
        -5,
        U128_MAX + 1,
        "340282366920938463463374607431768211456",
    ],
)
def test_values_the_ledger_would_refuse_are_refused_here(value: str | Decimal | int) -> None:
    with pytest.raises(errors.InvalidAmount) as raised:
        to_minor_units(value, 0 if isinstance(value, int) else 2)
    assert raised.value.reason == "INVALID_AMOUNT" and raised.value.metadata["source"] == "client"


def test_major_units_need_a_scale() -> None:
    with pytest.raises(ValueError, match="scale"):
        to_minor_units("1.00", None)


def test_signed_values_format_exactly() -> None:
    assert format_major(-1250, 2) == "-12.50"
    assert format_major(5, 3) == "0.005"
    assert format_major(U128_MAX, 18) == "340282366920938463463.374607431768211455"
