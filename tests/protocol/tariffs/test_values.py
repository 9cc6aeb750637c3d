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


@pytest.mark.parametrize("text", ["1.005", "1,00", "", "1e3", "ten"])
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(InvalidValueError):
        parse_amount(text, "KZT")


def test_amounts_are_written_in_major_units() -> None:
    assert format_amount(Money(465, "CAD")) == "4.65"
    assert format_amount(Money(-5, "KZT")) == "-0.05"


@pytest.mark.parametrize(("text", "seconds"), [("7:00", 25200), ("26:30:15", 95415)])
def test_times_of_day(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["7", "07:60", "07:00:61", "seven"])
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
