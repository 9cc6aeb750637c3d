"""Worked examples, read like an accountant's book (amounts in tenge, times in Almaty).

Every test runs on SQLite and on PostgreSQL, and the `ledger` fixture checks every
invariant of the books once the test is done.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from farebox.protocol.money import Money
from farebox.server.ledger.accounts import Channel
from farebox.server.ledger.book import Ledger, Settled
from farebox.server.ledger.settlement import FlatFareRater
from farebox.server.ledger.stoplist import BlockReason
from tests.server.conftest import Clock
from tests.server.helpers import at, kzt, tap, top_up

# 200 a ride, free transfers within 40 minutes, at most 500 a day.
RATER = FlatFareRater(kzt(200), transfer_window_ms=40 * 60_000, daily_cap=kzt(500))
MONDAY = date(2026, 3, 2)


async def balance(ledger: Ledger, token: str) -> Money:
    state = await ledger.account(f"rider:{token}")
    assert state is not None
    return state.balance


async def test_a_riders_day_with_transfers_and_a_cap(ledger: Ledger, clock: Clock) -> None:
    await ledger.top_up(top_up("nfc:aa", 2000, "sms-1"))
    # The validators each knew only their own taps: every ride was charged 200.
    day = [
        tap("bus-1", 1, "nfc:aa", at(2, "07:50")),
        tap("bus-2", 1, "nfc:aa", at(2, "08:20"), route="32"),  # transfer: free
        tap("bus-1", 2, "nfc:aa", at(2, "12:00")),
        tap("bus-3", 1, "nfc:aa", at(2, "17:30"), route="92"),
        tap("bus-3", 2, "nfc:aa", at(3, "01:30"), route="92"),  # after midnight: still Monday
    ]
    assert (await ledger.post_taps(day)).fresh == 5
    assert await balance(ledger, "nfc:aa") == kzt(2000 - 5 * 200)

    clock.now_ms = at(3, "03:00")  # Monday's fare day ends at 03:00 on Tuesday
    assert await ledger.settle_due(RATER) == Settled(1)
    # Rated: 200 + 0 (transfer) + 200 + 100 (cap reached) + 0 = 500 instead of 1000.
    assert await balance(ledger, "nfc:aa") == kzt(2000 - 500)
    revenue = dict(await ledger.revenue(MONDAY))
    assert revenue == {
        "revenue:KZT:citybus:12": kzt(400),
        "revenue:KZT:citybus:32": kzt(0),
        "revenue:KZT:citybus:92": kzt(100),
    }
    # Settling again changes nothing: the day has no new taps.
    assert await ledger.settle_due(RATER) == Settled(0)
    assert await ledger.settle("rider:nfc:aa", MONDAY, RATER) == ()


async def test_a_top_up_lifts_the_stoplist(ledger: Ledger) -> None:
    # First ride on risk: an empty card rides once and goes below its limit of zero.
    await ledger.post_taps([tap("bus-1", 1, "nfc:bb", at(2, "08:00"))])
    assert await balance(ledger, "nfc:bb") == kzt(-200)
    assert await ledger.stoplist_tokens() == ["nfc:bb"]
    listed = await ledger.stoplist_head()

    await ledger.top_up(top_up("nfc:bb", 150, "sms-2"))  # not enough: still -50
    assert await ledger.stoplist_head() == listed
    await ledger.top_up(top_up("nfc:bb", 100, "sms-3"))  # +50: off the list
    assert await balance(ledger, "nfc:bb") == kzt(50)
    assert await ledger.stoplist_tokens() == []

    delta = await ledger.stoplist_delta(listed.version)
    assert (delta.added, delta.removed) == ((), ("nfc:bb",))
    assert (await ledger.stoplist_delta(0)).added == ()  # listed and lifted: no net change
    back_then = await ledger.stoplist_delta(0, listed.version)
    assert (back_then.added, back_then.checksum) == (("nfc:bb",), listed.checksum)


async def test_a_late_tap_changes_a_closed_day(ledger: Ledger, clock: Clock) -> None:
    await ledger.top_up(top_up("nfc:cc", 1000, "sms-4"))
    await ledger.post_taps(
        [tap("bus-1", 1, "nfc:cc", at(2, "08:00")), tap("bus-1", 2, "nfc:cc", at(2, "18:00"))]
    )
    clock.now_ms = at(3, "04:00")
    assert await ledger.settle_due(RATER) == Settled(1)  # 200 + 200: nothing to adjust
    assert await balance(ledger, "nfc:cc") == kzt(600)

    # Tuesday noon: a bus that was offline since Monday syncs a Monday 08:30 tap, 30
    # minutes after the first: a free transfer that its validator could not know about.
    clock.now_ms = at(3, "12:00")
    await ledger.post_taps([tap("bus-9", 1, "nfc:cc", at(2, "08:30"), route="32")])
    assert await balance(ledger, "nfc:cc") == kzt(400)
    assert await ledger.settle_due(RATER) == Settled(1)
    assert await balance(ledger, "nfc:cc") == kzt(600)  # the 200 comes back
    statement = await ledger.statement("rider:nfc:cc")
    assert statement[0].transfer.key == "settle:rider:nfc:cc:2026-03-02:2:revenue:KZT:citybus:32"


async def test_a_tap_on_holds_the_maximum_fare_until_the_tap_off(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:dd", 1000, "sms-5"))
    tap_on = tap("gate-1", 7, "nfc:dd", at(2, "08:00"), route="S1")
    await ledger.hold(tap_on, kzt(600), timedelta(hours=3))
    state = await ledger.account("rider:nfc:dd")
    assert state is not None
    assert (state.balance, state.available) == (kzt(1000), kzt(400))

    await ledger.complete(tap_on.key, "tap:gate-9:3", kzt(250), at(2, "08:40"))
    state = await ledger.account("rider:nfc:dd")
    assert state is not None
    assert (state.balance, state.available) == (kzt(750), kzt(750))


async def test_a_hold_without_tap_off_is_charged_in_full(ledger: Ledger, clock: Clock) -> None:
    await ledger.top_up(top_up("nfc:ee", 1000, "sms-6"))
    await ledger.hold(
        tap("gate-1", 8, "nfc:ee", at(2, "08:00"), route="S1"), kzt(600), timedelta(hours=3)
    )
    clock.now_ms = at(2, "12:00")
    assert await ledger.charge_expired(timedelta(hours=2)) == 0  # within the grace
    clock.now_ms = at(2, "14:00")
    assert await ledger.charge_expired(timedelta(hours=2)) == 1
    assert await balance(ledger, "nfc:ee") == kzt(400)
    assert await ledger.charge_expired(timedelta(hours=2)) == 0


async def test_a_reversed_fare_leaves_its_day(ledger: Ledger, clock: Clock) -> None:
    await ledger.top_up(top_up("nfc:ff", 1000, "sms-7"))
    await ledger.post_taps(
        [tap("bus-1", 1, "nfc:ff", at(2, "08:00")), tap("bus-1", 2, "nfc:ff", at(2, "09:00"))]
    )
    clock.now_ms = at(3, "04:00")
    await ledger.settle_due(RATER)
    # The operator finds the second tap was a test of the validator: reverse it.
    await ledger.reverse("tap:bus-1:2", "reverse:ticket-42", "validator test")
    assert await balance(ledger, "nfc:ff") == kzt(800)
    assert await ledger.settle_due(RATER) == Settled(1)  # re-rated without it: nothing more moves
    assert await balance(ledger, "nfc:ff") == kzt(800)


async def test_operator_blocks_stack_with_the_balance_block(ledger: Ledger) -> None:
    await ledger.post_taps([tap("bus-1", 1, "nfc:gg", at(2, "08:00"))])  # balance -200
    await ledger.block("nfc:gg", BlockReason.STOLEN, "reported at the kiosk")
    await ledger.top_up(top_up("nfc:gg", 500, "sms-8"))  # lifts the balance reason only
    assert await ledger.stoplist_tokens() == ["nfc:gg"]
    assert await ledger.blocks("nfc:gg") == [("stolen", "reported at the kiosk")]
    await ledger.unblock("nfc:gg", BlockReason.STOLEN)
    assert await ledger.stoplist_size() == 0


async def test_a_credit_limit_lets_a_rider_ride_on_credit(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:hh", 100, "sms-9"))
    await ledger.set_credit_limit("nfc:hh", "KZT", kzt(300).minor)
    await ledger.post_taps([tap("bus-1", 1, "nfc:hh", at(2, "08:00"), fare=350)])
    assert await balance(ledger, "nfc:hh") == kzt(-250)
    assert await ledger.stoplist_size() == 0  # -250 is within the 300 limit
    await ledger.set_credit_limit("nfc:hh", "KZT", kzt(200).minor)
    assert await ledger.stoplist_tokens() == ["nfc:hh"]


async def test_an_app_ticket_is_a_liability_until_it_is_used(ledger: Ledger) -> None:
    await ledger.sell_ticket("qr-1", kzt(200), Channel.APP, at(2, "07:00"))
    await ledger.sell_ticket("qr-2", kzt(200), Channel.APP, at(2, "07:05"))
    ride = tap("bus-1", 1, "qr:qr-1", at(2, "08:00"))
    await ledger.post_taps([replace(ride, prepaid=True)])
    liability = await ledger.account("liability:KZT:tickets")
    assert liability is not None
    assert liability.balance == kzt(200)  # the unused ticket, still owed
    assert dict(await ledger.revenue(MONDAY)) == {"revenue:KZT:citybus:12": kzt(200)}


async def test_a_written_off_debt_lifts_the_stoplist(ledger: Ledger) -> None:
    await ledger.post_taps([tap("bus-1", 1, "nfc:ii", at(2, "08:00"))])
    assert await ledger.stoplist_tokens() == ["nfc:ii"]
    assert await ledger.write_off("nfc:ii", "KZT", "wo-1", "lost card, debt forgiven")
    assert await balance(ledger, "nfc:ii") == kzt(0)
    assert await ledger.stoplist_tokens() == []
    assert await ledger.write_off("nfc:ii", "KZT", "wo-2", "nothing owed") is None
    write_offs = await ledger.account("write_off:KZT")
    assert write_offs is not None
    assert write_offs.balance == kzt(-200)
