from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farebox.protocol.errors import CurrencyMismatchError, InvalidValueError
from farebox.protocol.money import Money

amounts = st.integers(min_value=-(10**15), max_value=10**15)


def test_amount_is_minor_units() -> None:
    fare = Money(20000, "KZT")
    assert str(fare) == "200.00 KZT"
    assert str(-Money(5, "KGS")) == "-0.05 KGS"


@pytest.mark.parametrize("bad", [200.0, True, "200", None])
def test_non_integer_amounts_are_type_errors(bad: object) -> None:
    with pytest.raises(TypeError):
        Money(bad, "KZT")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["kzt", "KZ", "KZTT", "", "12A"])
def test_currency_must_be_an_iso_code(bad: str) -> None:
    with pytest.raises(InvalidValueError):
        Money(1, bad)


def test_currencies_never_mix() -> None:
    with pytest.raises(CurrencyMismatchError):
        Money(1, "KZT") + Money(1, "KGS")
    with pytest.raises(CurrencyMismatchError):
        _ = Money(1, "KZT") < Money(2, "KGS")


def test_multiplication_takes_whole_numbers_only() -> None:
    assert Money(20000, "KZT") * 3 == Money(60000, "KZT")
    assert 2 * Money(5, "KZT") == Money(10, "KZT")
    with pytest.raises(TypeError):
        Money(20000, "KZT") * 0.5  # type: ignore[operator]


@given(amounts, amounts)
def test_addition_and_subtraction_are_exact(a: int, b: int) -> None:
    total = Money(a, "KZT") + Money(b, "KZT")
    assert total.minor == a + b
    assert total - Money(b, "KZT") == Money(a, "KZT")
    assert (Money(a, "KZT") < Money(b, "KZT")) == (a < b)
