"""The ledger: posting rules applied to a store, one database transaction per request.

`Ledger` is what the sync server and the operator commands call. It knows nothing of
HTTP: it takes values (taps, top-ups, tokens), asks the pure posting rules which transfers
they make, and has the store post them atomically. Every method is a coroutine that only
awaits the store, so it is safe to call from the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from farebox.protocol.money import Money
from farebox.server.errors import LedgerError, TransferStateError, UnknownAccountError
from farebox.server.ledger import parking, reads, writes
from farebox.server.ledger.accounts import (
    Account,
    AccountState,
    Channel,
    KnownAccounts,
    adjustment_account,
    clearing_account,
    rider_account,
    ticket_liability_account,
    write_off_account,
)
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.invariants import violations
from farebox.server.ledger.posting import (
    FareTap,
    TopUp,
    adjustment_transfer,
    fare_accounts,
    fare_transfer,
    hold_transfer,
    refund_transfer,
    resolve_transfer,
    reversal_transfer,
    ticket_sale_transfer,
    top_up_transfer,
    write_off_transfer,
)
from farebox.server.ledger.settlement import (
    DayState,
    Rater,
    UnratableDayError,
    settlement_transfers,
)
from farebox.server.ledger.stoplist import OPERATOR_REASONS, BlockChange, BlockReason, Delta, Head
from farebox.server.ledger.store import Session, Store
from farebox.server.ledger.transfers import Entry, Receipt, Transfer

log = logging.getLogger(__name__)
SETTLEMENT_ATTEMPTS = 3
SETTLING_AT_ONCE = 8
"""Fare days that `Ledger.settle_due` settles at a time."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class BatchResult:
    """How many taps of a batch were posted now, and how many had been posted before."""

    fresh: int
    repeated: int


@dataclass(frozen=True, slots=True)
class Settled:
    """What `Ledger.settle_due` did with the due days it took: settled or parked each."""

    settled: int
    parked: int = 0


async def _settle_revision(
    session: Session, state: DayState, posting: writes.Posting
) -> tuple[Receipt, ...] | None:
    """Claim the next revision of a day and post its adjustments; None if another server won."""
    if not await writes.claim_settlement(session, state, posting.now_ms):
        return None
    return await writes.post_transfers(session, posting)


async def _close_and_release(session: Session, last: date, rules: int) -> None:
    await writes.close_fare_days(session, last)
    await parking.release(session, rules)


async def _set_credit_limit(session: Session, account_id: str, limit: int, now_ms: int) -> None:
    if not await writes.set_credit_limit(session, account_id, limit, now_ms):
        raise UnknownAccountError(f"no rider account {account_id}")


async def _change_blocks(session: Session, change: BlockChange, now_ms: int) -> int:
    return (await writes.change_blocks(session, [change], now_ms)).head.version


class Ledger:
    """Double-entry books of riders, carriers and payment channels over one store."""

    def __init__(
        self,
        store: Store,
        policy: FareDayPolicy,
        *,
        credit_limit: int = 0,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.store = store
        self.policy = policy
        self.credit_limit = credit_limit
        self._clock = clock
        self.known = KnownAccounts()

    def _rider(self, token: str, currency: str, category: str | None = None) -> Account:
        return rider_account(token, currency, credit_limit=self.credit_limit, category=category)

    def _fare_accounts(self, taps: Sequence[FareTap]) -> list[Account]:
        """The accounts a batch of taps names that this ledger has not seen exist yet."""
        return fare_accounts(taps, self._rider, self.known)

    async def post(
        self, transfers: Sequence[Transfer], accounts: Sequence[Account] = ()
    ) -> tuple[Receipt, ...]:
        """Post transfers in one transaction, opening `accounts` first if they are missing."""
        missing = [account for account in accounts if account.id not in self.known]
        posting = writes.Posting.of(transfers, missing, self._clock())
        receipts = await self.store.run(writes.post_transfers, posting)
        self.known.add(posting.account_ids)
        return receipts

    async def post_taps(self, taps: Sequence[FareTap]) -> BatchResult:
        """Post the provisional fares of a batch of accepted taps, each at most once."""
        transfers = [fare_transfer(tap, self.policy) for tap in taps]
        receipts = await self.post(transfers, self._fare_accounts(taps))
        fresh = sum(receipt.fresh for receipt in receipts)
        return BatchResult(fresh, len(receipts) - fresh)

    async def hold(self, tap: FareTap, max_fare: Money, hold_for: timedelta) -> Receipt:
        """Hold the maximum fare at a tap-on until the tap-off, for at most `hold_for`."""
        timeout_ms = tap.time_ms + int(hold_for.total_seconds() * 1000)
        transfer = hold_transfer(tap, self.policy, max_fare=max_fare, timeout_ms=timeout_ms)
        (receipt,) = await self.post([transfer], self._fare_accounts([tap]))
        return receipt

    async def _resolve(
        self, pending_key: str, key: str, amount: Money | None, time_ms: int
    ) -> Receipt:
        pending = await self.transfer(pending_key)
        if pending is None:
            raise TransferStateError(f"no pending transfer {pending_key}")
        resolution = resolve_transfer(pending.transfer, key=key, amount=amount, time_ms=time_ms)
        (receipt,) = await self.post([resolution])
        return receipt

    async def complete(self, pending_key: str, key: str, amount: Money, time_ms: int) -> Receipt:
        """Post `amount` (at most the hold) of a pending transfer at `time_ms` (the tap-off)."""
        return await self._resolve(pending_key, key, amount, time_ms)

    async def void(self, pending_key: str, key: str) -> Receipt:
        """Release a pending transfer's hold without moving money."""
        return await self._resolve(pending_key, key, None, self._clock())

    async def charge_expired(self, grace: timedelta, limit: int = 1000) -> int:
        """Post in full up to `limit` holds expired more than `grace` ago; return how many.

        A tap-on without a tap-off pays the maximum fare. The grace leaves time for a bus
        that was offline to bring the tap-off that completes the trip.
        """
        now = self._clock()
        before = now - int(grace.total_seconds() * 1000)
        expired = await self.store.run(reads.expired_holds, before, limit)
        charges = [
            resolve_transfer(
                e.transfer, key=f"expire:{e.transfer.key}", amount=e.transfer.amount, time_ms=now
            )
            for e in expired
        ]
        return len(await self.post(charges)) if charges else 0

    async def top_up(self, top_up: TopUp) -> Receipt:
        """Credit a rider with money received through a channel (keyed by its payment id)."""
        currency = top_up.amount.currency
        accounts = [clearing_account(top_up.channel, currency), self._rider(top_up.token, currency)]
        (receipt,) = await self.post([top_up_transfer(top_up)], accounts)
        return receipt

    async def adjust(self, token: str, amount: Money, key: str, reason: str) -> Receipt:
        """An operator's correction of a rider's balance (positive credits the rider)."""
        transfer = adjustment_transfer(token, amount, key=key, time_ms=self._clock(), reason=reason)
        (receipt,) = await self.post([transfer], [adjustment_account(amount.currency)])
        return receipt

    async def sell_ticket(
        self, ticket_id: str, amount: Money, channel: Channel, time_ms: int
    ) -> Receipt:
        """An app ticket paid through a channel: a liability until a validator accepts it."""
        transfer = ticket_sale_transfer(ticket_id, amount, channel, time_ms)
        accounts = [
            clearing_account(channel, amount.currency),
            ticket_liability_account(amount.currency),
        ]
        (receipt,) = await self.post([transfer], accounts)
        return receipt

    async def write_off(self, token: str, currency: str, key: str, reason: str) -> Receipt | None:
        """Give up a rider's whole debt (which also takes the card off the stoplist)."""
        state = await self.account(rider_account(token, currency).id)
        if state is None:
            raise UnknownAccountError(f"no rider account for {token}")
        if state.posted >= 0:
            return None
        debt = Money(-state.posted, currency)
        transfer = write_off_transfer(token, debt, key=key, time_ms=self._clock(), reason=reason)
        (receipt,) = await self.post([transfer], [write_off_account(currency)])
        return receipt

    async def refund(self, token: str, amount: Money, channel: Channel, key: str) -> Receipt:
        """Pay a rider's available money back out through a channel."""
        transfer = refund_transfer(token, amount, channel, key=key, time_ms=self._clock())
        (receipt,) = await self.post([transfer], [clearing_account(channel, amount.currency)])
        return receipt

    async def reverse(self, key: str, reversal_key: str, reason: str) -> Receipt:
        """Undo a posted transfer with a new one; a reversed fare leaves its day's rating."""
        original = await self.transfer(key)
        if original is None:
            raise TransferStateError(f"no transfer {key} to reverse")
        reversal = reversal_transfer(
            original.transfer, key=reversal_key, time_ms=self._clock(), reason=reason
        )
        (receipt,) = await self.post([reversal])
        return receipt

    async def transfer(self, key: str) -> Entry | None:
        return await self.store.run(reads.transfer, key)

    async def account(self, account_id: str) -> AccountState | None:
        return await self.store.run(reads.account_state, account_id)

    async def statement(self, account_id: str, limit: int = 50) -> list[Entry]:
        return await self.store.read(reads.statement, account_id, limit)

    async def set_credit_limit(self, token: str, currency: str, limit: int) -> None:
        """Change a rider's credit limit; the stoplist follows at once."""
        account_id = rider_account(token, currency).id
        if limit < 0:
            raise LedgerError("a credit limit is not negative")
        await self.store.run(_set_credit_limit, account_id, limit, self._clock())

    async def _blocks(self, token: str, reason: BlockReason, note: str | None, *, add: bool) -> int:
        if reason not in OPERATOR_REASONS:
            raise LedgerError(f"{reason.value!r} blocks are kept by the ledger, not by operators")
        change = BlockChange(token, reason, add=add, note=note)
        return await self.store.run(_change_blocks, change, self._clock())

    async def block(self, token: str, reason: BlockReason, note: str | None = None) -> int:
        """Stop-list a token (lost, stolen, fraud...); return the stoplist version."""
        return await self._blocks(token, reason, note, add=True)

    async def unblock(self, token: str, reason: BlockReason) -> int:
        """Lift an operator's block; the token stays listed if another reason holds it."""
        return await self._blocks(token, reason, None, add=False)

    async def blocks(self, token: str) -> list[tuple[str, str | None]]:
        return await self.store.run(reads.blocks_of, token)

    async def stoplist_head(self) -> Head:
        return await self.store.run(reads.stoplist_head)

    async def stoplist_size(self) -> int:
        return await self.store.run(reads.stoplist_size)

    async def stoplist_tokens(self) -> list[str]:
        return await self.store.read(reads.stoplist_tokens)

    async def stoplist_delta(self, since: int, until: int | None = None) -> Delta:
        """Net additions and removals from version `since` to `until` (default: the latest),
        with the checksum of the whole list at `until`."""
        return await self.store.read(reads.stoplist_delta, since, until)

    async def settle(
        self,
        account_id: str,
        day: date,
        rater: Rater,
        *,
        force: bool = False,
        park_under: int | None = None,
    ) -> tuple[Receipt, ...]:
        """Re-rate one rider's fare day and post the difference; a no-op if nothing changed.

        Raises the rater's UnratableDayError, posting nothing, if it cannot price the day;
        with `park_under` (the rules' version, see `settle_due`) the day is parked first.
        """
        for _ in range(SETTLEMENT_ATTEMPTS):
            state = await self.store.run(reads.day_state, account_id, day)
            if not state.dirty and not force:
                return ()
            if state.taps:
                currency = state.taps[0].charged.currency
            else:
                found = await self.account(account_id)
                if found is None:
                    raise UnknownAccountError(f"no account {account_id}")
                currency = found.account.currency
            try:
                rated = rater(account_id, day, state.taps)
            except UnratableDayError as error:
                if park_under is not None:
                    await self.store.run(parking.park, state, str(error), park_under)
                raise
            # Stamped with the end of the day, so that two servers settling the same
            # revision from the same taps make identical transfers.
            adjustments = settlement_transfers(
                state, rated, currency=currency, time_ms=self.policy.closes_at_ms(day)
            )
            posting = writes.Posting.of(adjustments, (), self._clock())
            receipts = await self.store.run(_settle_revision, state, posting)
            if receipts is not None:
                return receipts
        raise LedgerError(f"{account_id} {day}: settlement kept racing with another server")

    async def settle_due(self, rater: Rater, *, limit: int = 1000, rules: int = 0) -> Settled:
        """Settle up to `limit` closed fare days not settled yet or changed by late taps.

        A day the rater cannot price is logged and parked (`parking`) under `rules`, the
        version of the rater's rules (the newest tariff package it holds): it is due again
        when a fare or reversal lands in it, or when a call brings newer rules. The others
        are settled. SETTLING_AT_ONCE days are settled at a time, each by itself as `settle`
        does: their transactions share commits on SQLite and connections on PostgreSQL. Any
        other failure (the store away) stops the others and is raised.
        """
        last = self.policy.last_closed(self._clock())
        await self.store.run(_close_and_release, last, rules)
        due = await self.store.run(reads.due_days, last, limit)
        pending = iter(due)
        parked = 0

        async def settler() -> None:
            nonlocal parked
            for account_id, day in pending:
                try:
                    await self.settle(account_id, day, rater, park_under=rules)
                except UnratableDayError as error:
                    log.error(
                        "fare day %s of %s cannot be rated, parked: %s", day, account_id, error
                    )
                    parked += 1

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(SETTLING_AT_ONCE):
                    group.create_task(settler())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return Settled(len(due) - parked, parked)

    async def parked_days(self) -> int:
        """How many rider days settlement could not rate (see `settle_due`)."""
        return await self.store.read(parking.parked_days)

    async def revenue(self, day: date) -> list[tuple[str, Money]]:
        return await self.store.read(reads.revenue, day)

    async def violations(self) -> list[str]:
        return await self.store.read(violations)
