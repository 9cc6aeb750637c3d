"""Fare days are marked for settlement when they close; only late postings mark them after.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date

import asyncpg
import pytest

from farebox.protocol.money import Money
from farebox.server.errors import LedgerError
from farebox.server.ledger.book import SETTLING_AT_ONCE, Ledger, Settled
from farebox.server.ledger.settlement import DayTap, FlatFareRater
from farebox.server.ledger.store import Session, open_store
from tests.server.conftest import ALMATY, Clock
from tests.server.helpers import at, kzt, tap, top_up

RATER = FlatFareRater(kzt(200), daily_cap=kzt(300))
MONDAY = date(2026, 3, 2)


async def marks(ledger: Ledger) -> list[tuple[str, str, bool]]:
    async def read(session: Session) -> list[tuple[str, str, bool]]:
        rows = await session.fetch("SELECT account, fare_day, dirty FROM fare_days ORDER BY 1, 2")
        return [(account, day, bool(dirty)) for account, day, dirty in rows]

    return await ledger.store.run(read)


async def test_taps_into_an_open_day_mark_nothing_until_it_closes(
    ledger: Ledger, clock: Clock
) -> None:
    await ledger.top_up(top_up("nfc:aa", 2000, "sms-1"))
    await ledger.post_taps([tap("bus-1", n, "nfc:aa", at(2, f"0{n}:00")) for n in range(7, 10)])
    assert await marks(ledger) == []

    clock.now_ms = at(3, "04:00")
    assert await ledger.settle_due(RATER) == Settled(1)
    assert await marks(ledger) == [("rider:nfc:aa", "2026-03-02", False)]

    # A bus that was offline brings a Monday tap on Tuesday: the closed day is marked again.
    await ledger.post_taps([tap("bus-9", 1, "nfc:aa", at(2, "20:00"))])
    assert await marks(ledger) == [("rider:nfc:aa", "2026-03-02", True)]
    assert await ledger.settle_due(RATER) == Settled(1)
    state = await ledger.account("rider:nfc:aa")
    assert state is not None
    assert state.balance == kzt(2000 - 300)  # four rides, capped at 300


async def test_a_day_settled_before_it_closed_is_settled_again_when_it_closes(
    ledger: Ledger, clock: Clock
) -> None:
    await ledger.post_taps([tap("bus-1", 1, "nfc:aa", at(2, "07:00"))])
    assert len(await ledger.settle("rider:nfc:aa", MONDAY, RATER)) == 0  # rated as charged
    await ledger.post_taps([tap("bus-1", 2, "nfc:aa", at(2, "08:00"))])
    clock.now_ms = at(3, "04:00")
    assert await ledger.settle_due(RATER) == Settled(1)


async def test_many_days_settle_at_once_and_a_failure_stops_them_with_its_error(
    ledger: Ledger, clock: Clock
) -> None:
    riders = [f"nfc:{n:02d}" for n in range(3 * SETTLING_AT_ONCE)]
    await ledger.post_taps(
        [tap("bus-1", 2 * n + k + 1, token, at(2, f"0{7 + k}:00"))
         for n, token in enumerate(riders) for k in range(2)]
    )  # fmt: skip
    clock.now_ms = at(3, "04:00")

    def failing(account: str, day: date, taps: Sequence[DayTap]) -> Sequence[Money]:
        if account == "rider:nfc:05":
            raise LedgerError("no tariff rates this day")
        return RATER(account, day, taps)

    with pytest.raises(LedgerError, match="no tariff"):
        await ledger.settle_due(failing)
    # The failed day, at least, and those stopped with it are still due; none twice.
    assert 1 <= (await ledger.settle_due(RATER)).settled <= len(riders)
    assert await ledger.settle_due(RATER) == Settled(0)
    for token in riders:  # two rides of 200 each, capped at 300: settled once
        state = await ledger.account(f"rider:{token}")
        assert state is not None
        assert state.balance == kzt(-300)


@pytest.mark.postgres
async def test_a_closing_waits_for_a_posting_that_read_the_old_close(
    postgres_dsn: str, clock: Clock
) -> None:
    """PostgreSQL: a posting share-locks the close row, so a closing that starts while the
    posting is still open waits for its commit and then sees its rider day."""
    store = await open_store(postgres_dsn)
    try:
        await store.migrate()
        ledger = Ledger(store, ALMATY, clock=clock)
        await ledger.post_taps([tap("bus-1", 1, "nfc:aa", at(2, "07:00"))])
        posting = await asyncpg.connect(postgres_dsn)
        try:
            transaction = posting.transaction()
            await transaction.start()
            await posting.execute("SELECT closed_through FROM fare_day_close FOR SHARE")
            clock.now_ms = at(3, "04:00")
            closing = asyncio.create_task(ledger.settle_due(RATER))
            await asyncio.sleep(0.3)
            assert not closing.done()  # waiting for the posting's commit
            await transaction.commit()
            assert await asyncio.wait_for(closing, timeout=10) == Settled(1)
        finally:
            await posting.close()
    finally:
        await store.close()
