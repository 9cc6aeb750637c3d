from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farebox.protocol.errors import CurrencyMismatchError, InvalidValueError
from farebox.protocol.money import MINOR_UNIT_EXPONENTS, Money, format_major, minor_unit_exponent

amounts = st.integers(min_value=-(10**15), max_value=10**15)


def test_amount_is_minor_units() -> None:
    fare = Money(20000, "KZT")
    assert str(fare) == "200.00 KZT"
    assert str(-Money(5, "KGS")) == "-0.05 KGS"


# ISO 4217's currencies whose minor unit is not a hundredth (funds and metals with no
# minor unit are left out: they are nobody's fare).
ISO_4217_NOT_TWO = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}


def test_the_table_lists_every_iso_currency_without_two_decimals() -> None:
    expected = {
        code: places for places, codes in ISO_4217_NOT_TWO.items() for code in codes.split()
    }
    assert expected == MINOR_UNIT_EXPONENTS
    assert minor_unit_exponent("KZT") == minor_unit_exponent("CAD") == 2


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(210, "JPY"), "210 JPY"),
        (Money(-5, "KRW"), "-5 KRW"),
        (Money(125, "KWD"), "0.125 KWD"),
        (Money(-1001, "BHD"), "-1.001 BHD"),
        (Money(10001, "CLF"), "1.0001 CLF"),
        (Money(465, "CAD"), "4.65 CAD"),
    ],
)
def test_amounts_are_written_with_the_currency_s_own_decimals(money: Money, text: str) -> None:
    assert str(money) == text
    assert format_major(money) == text.split()[0]


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
