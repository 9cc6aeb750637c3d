"""Odd operator inputs are refused with a problem that says what is expected, never a 500:
query parameters (`limit`, `day`) and tariffs whose numbers do not fit in 64 bits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.operator.conftest import Operator

TARIFF = Path(__file__).resolve().parents[3] / "packaging" / "tariffs" / "city-kzt.toml"
ACCOUNT = "/api/v1/accounts/nfc:ab01"

BAD_LIMITS = ["²", "٣", "0", "10001", "-1", "+5", " 5", "1.5", "", "99999999999999999999"]
BAD_DAYS = [
    "0001-01-01", "1969-12-31", "9999-12-30", "9999-12-31", "2026-02-30", "20260302",
    "2026-W10-1", "2026-3-2", "\uff12\uff10\uff12\uff16-03-02", "2026-03-02T00:00", "",
]  # fmt: skip


@pytest.fixture
async def account(operator: Operator) -> str:
    body = {"amount": 50000, "currency": "KZT", "channel": "kiosk"}
    headers = {"Idempotency-Key": "k1"}
    await operator.call("POST", f"{ACCOUNT}/top-ups", json=body, headers=headers, expect=201)
    return ACCOUNT


async def test_a_limit_is_a_whole_number_of_ascii_digits_from_1_to_10000(
    operator: Operator, account: str
) -> None:
    for path in (account, "/api/v1/ticket-alerts"):
        for limit in BAD_LIMITS:
            refused = await operator.call("GET", path, params={"limit": limit}, expect=400)
            assert refused["code"] == "malformed"
            assert refused["detail"] == f"limit is a whole number from 1 to 10000, got {limit!r}"
        for limit in ("1", "10000", "00050"):
            await operator.call("GET", path, params={"limit": limit})


async def test_a_day_is_a_date_from_1970_to_the_calendar_s_last_but_two(
    operator: Operator,
) -> None:
    for path in ("/api/v1/reports/revenue", "/api/v1/reports/taps-per-minute"):
        for day in BAD_DAYS:
            refused = await operator.call("GET", path, params={"day": day}, expect=400)
            assert refused["code"] == "malformed"
            expected = f"day is a date YYYY-MM-DD from 1970-01-01 to 9999-12-29, got {day!r}"
            assert refused["detail"] == expected
        for day in ("1970-01-01", "9999-12-29", "2026-03-02"):
            answer = await operator.call("GET", path, params={"day": day})
            assert answer["day"] == day


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("version = 1", "version = 99999999999999999999", "tariff version must be a whole"),
        ('amount = "200"', 'amount = "99999999999999999999999"', "does not fit in 64 signed"),
    ],
)
async def test_a_tariff_whose_numbers_pass_64_bits_is_refused_with_its_problems(
    operator: Operator, old: str, new: str, problem: str
) -> None:
    text = TARIFF.read_text(encoding="utf-8")
    assert old in text
    refused = await operator.call(
        "POST", "/api/v1/tariffs", data=text.replace(old, new).encode(), expect=422
    )
    assert refused["code"] == "invalid_tariff"
    assert problem in refused["detail"]
    assert (await operator.call("GET", "/api/v1/tariffs"))["tariffs"] == []
