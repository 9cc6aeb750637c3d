"""Settlement prices each tap with the tariff in force at its time, as the validator did.

The city's tariff (bus rides 200 KZT, from 1 January) and its successor, published ahead
of its day (bus rides 250 KZT). Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from farebox.protocol.money import Money
from farebox.protocol.tariffs import Tariff, load_tariff
from farebox.server.ledger.book import Ledger, Settled
from farebox.server.ledger.tariff_rater import TariffRater
from tests.server.conftest import ALMATY, Clock
from tests.server.helpers import at, kzt, tap

EXAMPLE = Path(__file__).resolve().parents[2] / "packaging" / "tariffs" / "city-kzt.toml"
TEXT = EXAMPLE.read_text(encoding="utf-8")
BUS_RIDE = 'id = "bus-ride"\nname = "Bus ride"\namount = "200"'
CITY = load_tariff(TEXT)


def successor(effective_from: str) -> Tariff:
    """Version 2 of the city's tariff: bus rides of 250 KZT from `effective_from`."""
    assert TEXT.count(BUS_RIDE) == 1
    text = (
        TEXT.replace("version = 1", "version = 2")
        .replace("effective_from = 2026-01-01T03:00:00+05:00", f"effective_from = {effective_from}")
        .replace(BUS_RIDE, BUS_RIDE.replace('"200"', '"250"'))
    )
    return load_tariff(text)


APRIL = successor("2026-04-01T03:00:00+05:00")
RIDER = "rider:nfc:77"


def april(day: int, clock: str) -> int:
    """UTC milliseconds of a local Almaty time on a day of April 2026."""
    hour, minute = (int(part) for part in clock.split(":"))
    return int(
        datetime(2026, 4, day, hour, minute, tzinfo=ZoneInfo("Asia/Almaty")).timestamp() * 1000
    )


async def balance(ledger: Ledger) -> Money:
    state = await ledger.account(RIDER)
    assert state is not None
    return state.balance


async def test_a_tariff_published_ahead_of_its_day_does_not_price_the_days_before_it(
    ledger: Ledger, clock: Clock
) -> None:
    both = TariffRater((CITY, APRIL), ALMATY)
    # Two rides on 2 March, four hours apart (no transfer), 200 each as validators charged.
    await ledger.post_taps(
        [tap("bus-1", 1, "nfc:77", at(2, "07:00")), tap("bus-1", 2, "nfc:77", at(2, "11:00"))]
    )
    clock.now_ms = at(3, "04:00")
    assert await ledger.settle_due(both, rules=2) == Settled(1)
    assert await balance(ledger) == kzt(-400)  # not 500: April's fares wait for April
    # In April the validators charge 250 a ride, and settlement agrees.
    await ledger.post_taps(
        [
            tap("bus-1", 3, "nfc:77", april(1, "07:00"), fare=250),
            tap("bus-1", 4, "nfc:77", april(1, "11:00"), fare=250),
        ]
    )
    clock.now_ms = april(2, "04:00")
    assert await ledger.settle_due(both, rules=2) == Settled(1)
    assert await balance(ledger) == kzt(-400 - 500)


async def test_a_late_tap_re_settles_an_old_day_at_the_fares_of_its_time(
    ledger: Ledger, clock: Clock
) -> None:
    both = TariffRater((CITY, APRIL), ALMATY)
    await ledger.post_taps([tap("bus-1", 1, "nfc:77", at(2, "07:00"))])
    clock.now_ms = at(3, "04:00")
    assert await ledger.settle_due(both, rules=2) == Settled(1)
    # A bus offline since 2 March syncs in April: the day is settled again, at 200 a ride.
    clock.now_ms = april(2, "04:00")
    await ledger.post_taps([tap("bus-9", 1, "nfc:77", at(2, "11:00"))])
    assert await ledger.settle_due(both, rules=2) == Settled(1)
    assert await balance(ledger) == kzt(-400)
    statement = await ledger.statement(RIDER)
    assert not [line for line in statement if line.transfer.key.startswith("settle:")]


async def test_each_leg_is_priced_by_the_tariff_in_force_at_its_time(
    ledger: Ledger, clock: Clock
) -> None:
    """A tariff may take effect within a fare day: the legs before it keep the old fare."""
    noon = successor("2026-03-02T12:00:00+05:00")
    # The validators had not received the new tariff yet: 200 each.
    await ledger.post_taps(
        [tap("bus-1", 1, "nfc:77", at(2, "07:00")), tap("bus-1", 2, "nfc:77", at(2, "15:00"))]
    )
    clock.now_ms = at(3, "04:00")
    assert await ledger.settle_due(TariffRater((CITY, noon), ALMATY), rules=2) == Settled(1)
    assert await balance(ledger) == kzt(-200 - 250)


async def test_a_day_before_every_tariff_is_parked_until_one_in_force_is_published(
    ledger: Ledger, clock: Clock
) -> None:
    await ledger.post_taps([tap("bus-1", 1, "nfc:77", at(2, "07:00"))])
    clock.now_ms = at(3, "04:00")
    assert await ledger.settle_due(TariffRater((APRIL,), ALMATY), rules=1) == Settled(0, 1)
    assert await ledger.settle_due(TariffRater((APRIL,), ALMATY), rules=1) == Settled(0)
    assert await balance(ledger) == kzt(-200)  # what the validator charged, untouched
    assert await ledger.settle_due(TariffRater((APRIL, CITY), ALMATY), rules=2) == Settled(1)
    assert await ledger.parked_days() == 0
    assert await balance(ledger) == kzt(-200)
    revision = await ledger.store.run(
        lambda session: session.fetch(
            "SELECT revision FROM fare_days WHERE account = $1 AND fare_day = $2",
            RIDER,
            date(2026, 3, 2).isoformat(),
        )
    )
    assert [tuple(row) for row in revision] == [(1,)]
