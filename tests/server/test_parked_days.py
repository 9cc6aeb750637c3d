"""A rider day the tariff cannot rate is parked; the other days settle.

It stays out of the due days until something could change its answer: a fare or a
reversal posted into it, or newer rules (a tariff published since). Every test runs on
SQLite and on PostgreSQL, but the query plans, which are SQLite's.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from farebox.protocol.money import Money
from farebox.protocol.tariffs import load_tariff
from farebox.server.ledger import parking, reads
from farebox.server.ledger.book import Ledger, Settled
from farebox.server.ledger.settlement import FlatFareRater
from farebox.server.ledger.sqlite_store import SqliteStore
from farebox.server.ledger.store import Session
from farebox.server.ledger.tariff_rater import TariffRater
from tests.server.conftest import ALMATY, Clock
from tests.server.helpers import at, kzt, tap

EXAMPLE = Path(__file__).resolve().parents[2] / "packaging" / "tariffs" / "city-kzt.toml"
TARIFF = TariffRater.matching(load_tariff(EXAMPLE.read_text(encoding="utf-8")), ALMATY)
"""The city's tariff prices bus routes 12, 32, 92 and 121: not route 7."""
MONDAY = date(2026, 3, 2)
DROPPED = "rider:nfc:000"
"""The rider whose Monday has a ride on route 7, a route the tariff no longer prices."""


async def a_monday_with_a_dropped_route(ledger: Ledger, clock: Clock, riders: int) -> None:
    """One ride on route 7 and `riders` riders' rides on route 12, on Monday; then Tuesday."""
    taps = [tap("bus-7", 1, "nfc:000", at(2, "07:00"), route="7")]
    taps += [tap("bus-1", n, f"nfc:{n:03d}", at(2, "07:30")) for n in range(1, riders + 1)]
    await ledger.post_taps(taps)
    clock.now_ms = at(3, "04:00")


async def balance(ledger: Ledger, account_id: str) -> Money:
    state = await ledger.account(account_id)
    assert state is not None
    return state.balance


async def due(ledger: Ledger) -> list[tuple[str, date]]:
    return await ledger.store.run(reads.due_days, MONDAY, 1000)


async def test_a_day_the_tariff_cannot_rate_is_parked_and_every_other_day_settles(
    ledger: Ledger, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    await a_monday_with_a_dropped_route(ledger, clock, 60)
    with caplog.at_level(logging.ERROR):
        assert await ledger.settle_due(TARIFF, rules=1) == Settled(60, 1)
    (logged,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert DROPPED in logged.getMessage()
    assert "2026-03-02" in logged.getMessage()
    assert "route '7'" in logged.getMessage()
    assert await due(ledger) == []
    assert await ledger.parked_days() == 1
    assert await ledger.settle_due(TARIFF, rules=1) == Settled(0)  # not tried again
    for n in (1, 60):  # rated as the validator charged them: 200 a ride
        assert await balance(ledger, f"rider:nfc:{n:03d}") == kzt(-200)


async def test_a_late_tap_or_a_reversal_makes_a_parked_day_due_again(
    ledger: Ledger, clock: Clock
) -> None:
    await a_monday_with_a_dropped_route(ledger, clock, 1)
    assert await ledger.settle_due(TARIFF, rules=1) == Settled(1, 1)
    # A bus that was offline brings a Monday ride on route 12: tried again, still parked.
    await ledger.post_taps([tap("bus-1", 9, "nfc:000", at(2, "12:00"))])
    assert await due(ledger) == [(DROPPED, MONDAY)]
    assert await ledger.settle_due(TARIFF, rules=1) == Settled(0, 1)
    # The operator reverses the route 7 ride: the day is rated from the other one.
    await ledger.reverse("tap:bus-7:1", "reverse:bus-7:1", "route 7 no longer runs")
    assert await ledger.settle_due(TARIFF, rules=1) == Settled(1)
    assert await ledger.parked_days() == 0
    assert await balance(ledger, DROPPED) == kzt(-200)


async def test_newer_rules_make_parked_days_due_again(ledger: Ledger, clock: Clock) -> None:
    await a_monday_with_a_dropped_route(ledger, clock, 1)
    assert await ledger.settle_due(TARIFF, rules=1) == Settled(1, 1)
    assert await ledger.settle_due(TARIFF, rules=1) == Settled(0)
    flat = FlatFareRater(kzt(150))  # a tariff published since, that prices every route
    assert await ledger.settle_due(flat, rules=2) == Settled(1)
    assert await ledger.parked_days() == 0
    assert await balance(ledger, DROPPED) == kzt(-150)


async def test_a_fare_posted_while_the_day_was_rated_leaves_it_due(
    ledger: Ledger, clock: Clock
) -> None:
    """Parking a day read before a fare came leaves it dirty: the fare may change its answer."""
    await a_monday_with_a_dropped_route(ledger, clock, 0)
    assert await ledger.settle_due(TARIFF, rules=1) == Settled(0, 1)
    await ledger.post_taps([tap("bus-1", 1, "nfc:000", at(2, "12:00"))])
    read = await ledger.store.run(reads.day_state, DROPPED, MONDAY)
    await ledger.post_taps([tap("bus-1", 2, "nfc:000", at(2, "13:00"))])
    await ledger.store.run(parking.park, read, "leg 0: no fare rule prices this leg", 1)
    assert await due(ledger) == [(DROPPED, MONDAY)]


@pytest.mark.parametrize(
    ("statement", "args"), [(parking.RELEASE, (2,)), (parking.COUNT_PARKED, ())]
)
async def test_parked_days_are_found_through_their_own_index(
    tmp_path: Path, statement: str, args: tuple[object, ...]
) -> None:
    """Releasing and counting parked days read the parked days alone, not every rider day."""
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/ledger.db")
    try:
        await store.migrate()

        async def explain(session: Session) -> list[str]:
            plan = await session.fetch(f"EXPLAIN QUERY PLAN {statement}", *args)
            return [str(detail) for *_, detail in plan]

        steps = await store.run(explain)
        reading = [step for step in steps if "fare_days" in step]
        assert reading, steps
        assert all("USING INDEX fare_days_parked" in step for step in reading), steps
    finally:
        await store.close()
