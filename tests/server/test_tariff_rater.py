"""Fare-day settlement with the real tariff engine and the example tariff of the city."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from farebox.protocol.tariffs import load_tariff
from farebox.server.errors import ConfigurationError
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.tariff_rater import TariffRater
from tests.server.conftest import ALMATY, Clock
from tests.server.helpers import at, kzt, tap, top_up

EXAMPLE = Path(__file__).resolve().parents[2] / "packaging" / "tariffs" / "city-kzt.toml"
TARIFF = load_tariff(EXAMPLE.read_text(encoding="utf-8"))


async def test_settlement_applies_the_tariffs_transfers_and_daily_cap(
    ledger: Ledger, clock: Clock
) -> None:
    await ledger.top_up(top_up("nfc:ab", 3000, "sms-1"))
    # Each validator charged a full single fare: 200 a bus ride, 250 the metro.
    day = [
        tap("bus-1", 1, "nfc:ab", at(2, "07:00"), 200, "12"),
        tap("bus-2", 1, "nfc:ab", at(2, "09:00"), 200, "92"),
        tap("gate-1", 1, "nfc:ab", at(2, "12:00"), 250, "M1", carrier="metro"),
        tap("bus-1", 2, "nfc:ab", at(2, "15:00"), 200, "12"),
        tap("bus-1", 3, "nfc:ab", at(2, "18:00"), 200, "12"),
    ]
    await ledger.post_taps(day)
    clock.now_ms = at(3, "03:00")
    # The adult daily cap is 600: the metro ride is cut to 200 and the last two are free.
    await ledger.settle_due(TariffRater.matching(TARIFF, ALMATY))
    state = await ledger.account("rider:nfc:ab")
    assert state is not None
    assert state.balance == kzt(3000 - 600)
    revenue = dict(await ledger.revenue(date(2026, 3, 2)))
    assert revenue == {
        "revenue:KZT:citybus:12": kzt(200),
        "revenue:KZT:citybus:92": kzt(200),
        "revenue:KZT:metro:M1": kzt(200),
    }


def test_a_tariff_with_other_fare_days_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="differ"):
        TariffRater.matching(TARIFF, FareDayPolicy.parse("Asia/Almaty", "04:00"))
    with pytest.raises(ConfigurationError, match="differ"):
        TariffRater.matching(TARIFF, FareDayPolicy.parse("Asia/Bishkek", "03:00"))
