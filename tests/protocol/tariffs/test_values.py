"""Small values checked on construction: amounts, times, legs, rules."""

from __future__ import annotations

from datetime import datetime

import pytest

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.tariffs.amounts import format_amount, parse_amount
from farebox.protocol.tariffs.journey import Leg
from farebox.protocol.tariffs.model import FareTransferType, JoinRule, TransferRule
from farebox.protocol.tariffs.timeframes import parse_time
from tests.protocol.tariffs.helpers import almaty


@pytest.mark.parametrize(
    ("text", "minor"),
    [("200", 20000), ("4.65", 465), ("0.5", 50), ("-1.00", -100), ("3.50", 350)],
)
def test_amounts_are_read_exactly(text: str, minor: int) -> None:
    assert parse_amount(text, "KZT") == Money(minor, "KZT")


@pytest.mark.parametrize(
    "text",
    [
        "1.005",
        "1,00",
        "",
        "1e3",
        "ten",
        "\u0662\u0660\u0660",  # 200 in Arabic-Indic digits
        "\uff12\uff10\uff10",  # 200 in full-width digits
        "2\u09e6\u09e6",  # Bengali zeros after an ASCII 2
        " 200",
        "200 ",
        "200\n",
        "+200",
    ],
)
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(InvalidValueError):
        parse_amount(text, "KZT")


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("0.125", "KWD", 125), ("1.5", "KWD", 1500), ("210", "JPY", 210), ("210.0", "JPY", 210),
     ("0.0001", "CLF", 1), ("4.65", "CAD", 465)],
)  # fmt: skip
def test_amounts_have_the_currency_s_own_decimals(text: str, currency: str, minor: int) -> None:
    amount = parse_amount(text, currency)
    assert amount == Money(minor, currency)
    assert parse_amount(format_amount(amount), currency) == amount


@pytest.mark.parametrize(
    ("text", "currency"), [("210.5", "JPY"), ("1.5", "KRW"), ("0.1255", "KWD")]
)
def test_more_decimals_than_the_currency_has_are_refused(text: str, currency: str) -> None:
    with pytest.raises(InvalidValueError, match=f"decimals for {currency}"):
        parse_amount(text, currency)


def test_amounts_are_written_in_major_units() -> None:
    assert format_amount(Money(465, "CAD")) == "4.65"
    assert format_amount(Money(-5, "KZT")) == "-0.05"


@pytest.mark.parametrize(("text", "seconds"), [("7:00", 25200), ("26:30:15", 95415)])
def test_times_of_day(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "text", ["7", "07:60", "07:00:61", "seven", "\u0660\u0667:\u0660\u0660", " 07:00", "07:00\n"]
)
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(InvalidValueError):
        parse_time(text)


def test_a_leg_needs_times_with_an_offset_in_order() -> None:
    with pytest.raises(InvalidValueError, match="UTC offset"):
        Leg("1", "a", datetime(2026, 3, 2, 8, 0))  # noqa: DTZ001 - the naive time is the point
    with pytest.raises(InvalidValueError, match="before its departure"):
        Leg("1", "a", almaty(2, "08:00"), "b", almaty(2, "07:00"))


def test_rules_check_their_own_fields() -> None:
    with pytest.raises(InvalidValueError, match="go together"):
        JoinRule("bus", "bus", "a", None)
    with pytest.raises(InvalidValueError, match="needs a transfer_count"):
        TransferRule(FareTransferType.A_PLUS_AB, "bus", "bus")
    with pytest.raises(InvalidValueError, match="-1"):
        TransferRule(FareTransferType.A_PLUS_AB, "bus", "bus", transfer_count=0)
    with pytest.raises(InvalidValueError, match="go together"):
        TransferRule(FareTransferType.AB, "bus", "metro", duration_limit=60)
