"""The settlement task re-rates closed fare days, again when a late tap lands in one."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest

from farebox.protocol.packages import PackageKind
from farebox.protocol.tariffs import load_tariff
from farebox.protocol.tariffs.wire import encode_tariff
from farebox.server.errors import ConfigurationError
from farebox.server.http.state import Settings
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.store import Session
from farebox.server.sync import publishing
from farebox.server.sync.fares import Books
from tests.server.conftest import ALMATY
from tests.server.helpers import at, tap
from tests.server.operator.conftest import SETTLE_EVERY_S, Operator, records, sync
from tests.server.sync.conftest import Device
from tests.support.records import accepted_tap

TARIFF = Path(__file__).resolve().parents[3] / "packaging" / "tariffs" / "city-kzt.toml"
TOKEN = "nfc:04a1b2c3d4e5f6"  # `accepted_tap`'s
RIDER = f"rider:{TOKEN}"
DAY = date(2026, 3, 2)


async def settled_revision(operator: Operator, revision: int) -> None:
    """Wait (a bounded while) until the rider's day is settled at `revision` and clean."""

    async def state(session: Session) -> tuple[int, bool]:
        rows = await session.fetch(
            "SELECT revision, dirty FROM fare_days WHERE account = $1 AND fare_day = $2",
            RIDER,
            DAY.isoformat(),
        )
        return (int(rows[0][0]), bool(rows[0][1])) if rows else (0, True)

    for _ in range(200):  # at most 200 settlement periods
        if await operator.store.run(state) == (revision, False):
            return
        await asyncio.sleep(SETTLE_EVERY_S)
    raise AssertionError(
        f"day not settled at revision {revision}: {await operator.store.run(state)}"
    )


async def rides(device: Device, first_ms: int, count: int) -> None:
    """One batch of `count` bus rides three hours apart, so one settlement sees them all."""
    journal = records(device, [accepted_tap()] * count, first_ms, step_ms=3 * 3_600_000)
    assert await sync(device, journal) == 200


async def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Wait, at most 200 settlement periods, until `text` is logged."""
    for _ in range(200):
        if text in caplog.text:
            return
        await asyncio.sleep(SETTLE_EVERY_S)
    raise AssertionError(f"never logged: {text!r}")


async def test_a_late_tap_for_a_closed_day_is_re_settled_in_the_background(
    operator: Operator, device: Device
) -> None:
    await operator.call("POST", "/api/v1/tariffs", data=TARIFF.read_text("utf-8"), expect=201)
    operator.clock.now_ms = at(3, "04:00")  # the 2nd's fare day closed at 03:00
    # Three bus rides of 200 KZT, each charged in full: what the tariff says too.
    await rides(device, at(2, "07:00"), 3)
    await settled_revision(operator, 1)
    assert (await operator.call("GET", f"/api/v1/accounts/{TOKEN}"))["balance"] == -60000
    # A bus that was offline brings two more rides of that closed day, charged in full;
    # the adult daily cap of 600 KZT makes them free when the day is settled again.
    await rides(device, at(2, "16:00"), 2)
    await settled_revision(operator, 2)
    account = await operator.call("GET", f"/api/v1/accounts/{TOKEN}")
    assert account["balance"] == -60000
    refunds = [
        line["amount"]
        for line in account["statement"]
        if line["key"].startswith(f"settle:{RIDER}:{DAY.isoformat()}:2:")
    ]
    assert refunds == [40000]
    async with operator.http.get(f"{operator.url}metrics") as metrics:
        assert "farebox_settled_days_total 2" in await metrics.text()


async def test_a_failing_round_is_logged_and_the_next_one_settles(
    operator: Operator, device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    await operator.call("POST", "/api/v1/tariffs", data=TARIFF.read_text("utf-8"), expect=201)
    # A damaged store: a tariff package that no longer decodes fails every round.
    damaged = "INSERT INTO packages (kind, version, body, created_ms) VALUES ($1, 2, $2, 0)"
    await operator.store.run(lambda session: session.execute(damaged, "tariff", b"damaged"))
    operator.clock.now_ms = at(3, "04:00")
    await rides(device, at(2, "07:00"), 1)
    await logged(caplog, "fare-day settlement round failed")
    repair = "DELETE FROM packages WHERE kind = $1 AND version = 2"
    await operator.store.run(lambda session: session.execute(repair, "tariff"))
    await settled_revision(operator, 1)


async def test_a_day_a_tariff_of_other_fare_days_rates_waits_for_a_corrected_one(
    operator: Operator, device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    # A tariff whose fare days are not the ledger's cannot rate a day (the operator API
    # refuses to publish one; the store takes it from here): the day is parked.
    elsewhere = load_tariff(TARIFF.read_text("utf-8").replace("Asia/Almaty", "Asia/Bishkek"))
    payload, now = encode_tariff(elsewhere), operator.clock()
    await operator.store.run(
        lambda session: publishing.publish(session, PackageKind.TARIFF, payload, now)
    )
    operator.clock.now_ms = at(3, "04:00")
    await rides(device, at(2, "07:00"), 1)
    await logged(caplog, "cannot be rated, parked")
    assert "differ from the ledger's" in caplog.text
    # The corrected tariff, a version later, is in force from the same day.
    corrected = TARIFF.read_text("utf-8").replace("version = 1", "version = 2")
    await operator.call("POST", "/api/v1/tariffs", data=corrected, expect=201)
    await settled_revision(operator, 1)


async def test_a_tariff_published_ahead_of_its_day_prices_none_of_the_days_before_it(
    operator: Operator, device: Device
) -> None:
    bus_ride = 'id = "bus-ride"\nname = "Bus ride"\namount = "200"'
    text = TARIFF.read_text("utf-8")
    april = (
        text.replace("version = 1", "version = 2")
        .replace("2026-01-01T03:00:00+05:00", "2026-04-01T03:00:00+05:00")
        .replace(bus_ride, bus_ride.replace('"200"', '"250"'))
    )
    assert april.count('amount = "250"') == 2  # the bus ride's, beside the metro ride's
    for published in (text, april):
        await operator.call("POST", "/api/v1/tariffs", data=published, expect=201)
    operator.clock.now_ms = at(3, "04:00")
    await rides(device, at(2, "07:00"), 2)  # 200 KZT each, as the validator charged
    await settled_revision(operator, 1)
    assert (await operator.call("GET", f"/api/v1/accounts/{TOKEN}"))["balance"] == -40000


async def test_a_day_the_tariff_cannot_rate_is_parked_and_counted_while_the_others_settle(
    operator: Operator, caplog: pytest.LogCaptureFixture
) -> None:
    await operator.call("POST", "/api/v1/tariffs", data=TARIFF.read_text("utf-8"), expect=201)
    ledger = Ledger(operator.store, ALMATY, clock=operator.clock)
    taps = [tap("bus-7", 1, "nfc:000", at(2, "07:00"), route="7")]  # no rule prices route 7
    taps += [tap("bus-1", n, f"nfc:{n:03d}", at(2, "07:30")) for n in range(1, 61)]
    await ledger.post_taps(taps)
    operator.clock.now_ms = at(3, "04:00")

    async def done(session: Session) -> int:
        ((count,),) = await session.fetch("SELECT count(*) FROM fare_days WHERE NOT dirty")
        return int(count)

    for _ in range(200):  # at most 200 settlement periods
        if await operator.store.run(done) == 61:
            break
        await asyncio.sleep(SETTLE_EVERY_S)
    assert await ledger.parked_days() == 1
    assert "fare day 2026-03-02 of rider:nfc:000 cannot be rated, parked" in caplog.text
    async with operator.http.get(f"{operator.url}metrics") as metrics:
        text = await metrics.text()
    assert "farebox_parked_fare_days 1" in text
    assert "farebox_settled_days_total 60" in text


@pytest.mark.parametrize("period", [0.0, -1.0, float("nan")])
def test_a_settlement_period_that_is_not_positive_is_refused(period: float) -> None:
    with pytest.raises(ConfigurationError):
        Settings(db="sqlite:///unused.db", books=Books(ALMATY), settle_every_s=period)
