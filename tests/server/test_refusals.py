"""What the ledger refuses, and that a refusal leaves the books exactly as they were."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import asyncpg
import pytest

from farebox.protocol.money import Money
from farebox.server.errors import (
    IdempotencyConflictError,
    InsufficientFundsError,
    LedgerError,
    ServerError,
    TransferStateError,
    UnknownAccountError,
)
from farebox.server.ledger.accounts import Channel
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.posting import adjustment_transfer, fare_transfer
from farebox.server.ledger.stoplist import BlockReason
from farebox.server.ledger.store import Session
from farebox.server.ledger.transfers import Transfer, TransferKind
from tests.server.conftest import ALMATY
from tests.server.helpers import at, kzt, tap, top_up

DRIVER_REFUSALS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


async def snapshot(ledger: Ledger) -> tuple[object, ...]:
    """Everything a refusal must leave unchanged."""
    return (
        await ledger.statement("rider:nfc:01", 100),
        await ledger.account("rider:nfc:01"),
        await ledger.stoplist_head(),
    )


async def test_the_same_key_and_content_returns_the_first_receipt(ledger: Ledger) -> None:
    first = await ledger.top_up(top_up("nfc:01", 500, "pay-1", at(2, "08:00")))
    again = await ledger.top_up(top_up("nfc:01", 500, "pay-1", at(2, "08:05")))
    assert first.fresh
    assert not again.fresh
    assert (again.id, again.posted_ms) == (first.id, first.posted_ms)


async def test_the_same_key_with_other_content_is_a_conflict(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:01", 500, "pay-1"))
    before = await snapshot(ledger)
    with pytest.raises(IdempotencyConflictError) as refused:
        await ledger.top_up(top_up("nfc:01", 900, "pay-1"))
    assert refused.value.keys == ("top_up:sms:pay-1",)
    assert await snapshot(ledger) == before


async def test_a_batch_with_one_conflicting_tap_posts_nothing(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:01", 500, "pay-1"))
    await ledger.post_taps([tap("bus-1", 1, "nfc:01", at(2, "08:00"))])
    before = await snapshot(ledger)
    batch = [
        tap("bus-1", 2, "nfc:01", at(2, "09:00")),
        tap("bus-1", 1, "nfc:01", at(2, "08:00"), fare=999),  # seq 1 again, other fare
    ]
    with pytest.raises(IdempotencyConflictError):
        await ledger.post_taps(batch)
    assert await snapshot(ledger) == before


async def test_a_batch_posted_twice_posts_once(ledger: Ledger) -> None:
    batch = [tap("bus-1", seq, "nfc:01", at(2, "08:00") + seq) for seq in range(1, 6)]
    assert (await ledger.post_taps(batch)).fresh == 5
    # The second upload of the batch, with one new tap and one duplicated inside it.
    again = [*batch, tap("bus-1", 6, "nfc:01", at(2, "09:00")), batch[0]]
    result = await ledger.post_taps(again)
    assert (result.fresh, result.repeated) == (1, 6)
    state = await ledger.account("rider:nfc:01")
    assert state is not None
    assert state.balance == kzt(-6 * 200)


async def test_the_database_refuses_a_second_fare_for_a_tap(ledger: Ledger) -> None:
    """Even a caller that makes up another key cannot post a tap's fare twice."""
    await ledger.post_taps([tap("bus-1", 1, "nfc:01", at(2, "08:00"))])
    forged = fare_transfer(tap("bus-1", 1, "nfc:01", at(2, "08:00")), ALMATY)
    row = (f"forged:{forged.key}", "fare", "single", forged.debit, forged.credit, "KZT",
           200, 0, 0, None, None, "bus-1", 1, None, None, None, None)  # fmt: skip

    async def insert(session: Session) -> None:
        await session.execute(
            "INSERT INTO transfers (key, kind, phase, debit, credit, currency, amount,"
            " event_ms, posted_ms, reference, fare_day, device, seq, stop, category, origin,"
            " timeout_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
            " $15, $16, $17)",
            *row,
        )

    with pytest.raises(DRIVER_REFUSALS):
        await ledger.store.run(insert)


async def test_the_database_refuses_to_change_a_transfer(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:01", 500, "pay-1"))

    async def tamper(session: Session) -> None:
        await session.execute("UPDATE transfers SET amount = 1")

    with pytest.raises((sqlite3.IntegrityError, asyncpg.RaiseError)):
        await ledger.store.run(tamper)


async def test_an_unknown_account_is_refused(ledger: Ledger) -> None:
    transfer = adjustment_transfer("nfc:nobody", kzt(5), key="adj-1", time_ms=0, reason="test")
    with pytest.raises(UnknownAccountError):
        await ledger.post([transfer])
    with pytest.raises(UnknownAccountError):
        await ledger.set_credit_limit("nfc:nobody", "KZT", 100)
    with pytest.raises(TransferStateError, match="no transfer"):
        await ledger.reverse("no-such-key", "rev-1", "test")


async def test_an_account_of_another_currency_is_refused(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:01", 500, "pay-1"))  # a KZT account
    transfer = Transfer("usd-1", TransferKind.ADJUSTMENT, "adjustment:KZT", "rider:nfc:01",
                        Money(5, "USD"), 0)  # fmt: skip
    with pytest.raises(UnknownAccountError):
        await ledger.post([transfer])


async def test_pending_transfers_resolve_once_and_within_their_hold(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:01", 1000, "pay-1"))
    tap_on = tap("gate-1", 1, "nfc:01", at(2, "08:00"))
    await ledger.hold(tap_on, kzt(600), timedelta(hours=2))
    with pytest.raises(TransferStateError, match="more than"):
        await ledger.complete(tap_on.key, "off-1", kzt(700), at(2, "08:30"))
    with pytest.raises(TransferStateError, match="expired"):
        await ledger.complete(tap_on.key, "off-1", kzt(300), at(2, "10:30"))
    await ledger.void(tap_on.key, "void-1")
    assert not (await ledger.void(tap_on.key, "void-1")).fresh  # a faithful retry
    with pytest.raises(TransferStateError, match="already resolved"):
        await ledger.void(tap_on.key, "void-2")
    with pytest.raises(TransferStateError, match="not a pending"):
        await ledger.void("top_up:sms:pay-1", "void-3")
    with pytest.raises(TransferStateError, match="no pending"):
        await ledger.void("nothing", "void-4")
    state = await ledger.account("rider:nfc:01")
    assert state is not None
    assert (state.balance, state.available) == (kzt(1000), kzt(1000))


async def test_a_transfer_is_reversed_once(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:01", 1000, "pay-1"))
    await ledger.reverse("top_up:sms:pay-1", "rev-1", "charged back")
    with pytest.raises(TransferStateError):
        await ledger.reverse("top_up:sms:pay-1", "rev-2", "charged back twice")


async def test_operators_cannot_touch_the_balance_block(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="kept by the ledger"):
        await ledger.block("nfc:01", BlockReason.BALANCE)
    with pytest.raises(LedgerError):
        await ledger.set_credit_limit("nfc:01", "KZT", -1)
    with pytest.raises(LedgerError, match="not within"):
        await ledger.stoplist_delta(5)


async def test_a_refund_pays_out_only_what_the_rider_has(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:01", 300, "pay-1"))
    await ledger.set_credit_limit("nfc:01", "KZT", kzt(1000).minor)
    before = await snapshot(ledger)
    with pytest.raises(InsufficientFundsError):
        await ledger.refund("nfc:01", kzt(301), Channel.SMS, "refund-1")
    assert await snapshot(ledger) == before
    await ledger.refund("nfc:01", kzt(300), Channel.SMS, "refund-1")
    state = await ledger.account("rider:nfc:01")
    assert state is not None
    assert state.balance == kzt(0)


def test_the_error_tree_has_one_root() -> None:
    for error in (InsufficientFundsError, IdempotencyConflictError, TransferStateError):
        assert issubclass(error, LedgerError)
        assert issubclass(error, ServerError)
