"""Postings and stoplist changes, written once for both stores (see `store.Session`).

`post_transfers` is the one way money enters the books. Inside the caller's transaction it
opens missing accounts, checks what pending or reversed transfers the new ones name,
inserts them with conflict skip (the database keeps the balances from the inserted rows),
answers a faithful retry with the first posting's receipt, refuses a reused key with other
content, and brings the stoplist in line with the balances it changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from farebox.server.errors import (
    IdempotencyConflictError,
    InsufficientFundsError,
    TransferStateError,
)
from farebox.server.ledger.accounts import Account, token_of
from farebox.server.ledger.reads import (
    DAY_EVENTS,
    MOVES,
    account_state,
    transfer,
    transfer_from_row,
)
from farebox.server.ledger.settlement import DayState
from farebox.server.ledger.stoplist import BlockChange, BlockReason, Head, Plan, plan_changes
from farebox.server.ledger.store import AMONG, TRANSFER_COLUMNS, Row, Session
from farebox.server.ledger.transfers import Receipt, Transfer, TransferKind, origin_problem

_KEY, _KIND, _DEBIT, _CREDIT, _ORIGIN = map(
    TRANSFER_COLUMNS.index, ("key", "kind", "debit", "credit", "origin")
)
# What a transfer means for the books, compared when its key comes again: all it stores
# but the key and its times, so that a payment channel or an operator re-sending a
# request later is still the same request.
_CONTENT = [c for c in TRANSFER_COLUMNS if c not in ("key", "event_ms", "posted_ms")]
_CONTENT_AT = [TRANSFER_COLUMNS.index(c) for c in _CONTENT]
_EXISTING = f"SELECT key, id, posted_ms, {', '.join(_CONTENT)} FROM transfers WHERE key {AMONG}"  # noqa: S608 (fixed names)
# Rider accounts whose stoplist flag disagrees with their balance: (id, below the limit).
_MISMATCHES = f"""
SELECT id, posted - pending_debits < -credit_limit FROM accounts
WHERE id {AMONG} AND kind = 'rider'
  AND (posted - pending_debits < -credit_limit) <> limit_blocked ORDER BY id
"""  # noqa: S608 (fixed text)


def transfer_row(item: Transfer, now_ms: int) -> tuple[object, ...]:
    return (
        item.key,
        item.kind.value,
        item.phase.value,
        item.debit,
        item.credit,
        item.amount.currency,
        item.amount.minor,
        item.event_ms,
        now_ms,
        item.reference,
        None if item.fare_day is None else item.fare_day.isoformat(),
        item.device,
        item.seq,
        item.stop,
        item.category,
        item.origin,
        item.timeout_ms,
    )


def account_row(account: Account, now_ms: int) -> tuple[object, ...]:
    return (
        account.id,
        account.kind.value,
        account.currency,
        account.credit_limit,
        account.category,
        now_ms,
    )


async def _existing(session: Session, keys: Sequence[str]) -> dict[str, Row]:
    return {row[0]: row for row in await session.fetch_among(_EXISTING, keys)}


async def _check_origins(session: Session, rows: Sequence[Row]) -> None:
    naming = [transfer_from_row(row) for row in rows if row[_ORIGIN] is not None]
    if not naming:
        return
    # A retry of a resolution that already happened is answered, not re-checked.
    done = await _existing(session, [item.key for item in naming])
    for item in naming:
        if item.key in done or item.origin is None:
            continue
        origin = await transfer(session, item.origin)
        problem = origin_problem(item, None if origin is None else origin.transfer)
        if problem:
            raise TransferStateError(problem)


@dataclass(frozen=True, slots=True)
class Posting:
    """The rows of transfers to post at `now_ms` and of the accounts to open first where
    missing. Made before the transaction (`Posting.of`), so that the store is not held
    while rows are made. Rows are all a posting needs: the few checks that want a transfer
    (resolutions, reversals, refunds) make it again from its row."""

    transfer_rows: Sequence[Row]
    account_rows: Sequence[Row]
    now_ms: int

    @classmethod
    def of(cls, transfers: Sequence[Transfer], accounts: Sequence[Account], now_ms: int) -> Posting:
        return cls(
            [transfer_row(item, now_ms) for item in transfers],
            [account_row(account, now_ms) for account in accounts],
            now_ms,
        )

    @property
    def account_ids(self) -> list[str]:
        return [row[0] for row in self.account_rows]


async def post_transfers(session: Session, posting: Posting) -> tuple[Receipt, ...]:
    """Post the transfers of `posting` once each; return a receipt per transfer, in order."""
    rows = posting.transfer_rows
    await session.open_accounts(posting.account_rows)
    await _check_origins(session, rows)
    inserted = await session.insert_transfers(rows)
    fresh = {key: (ident, posted_ms) for key, ident, posted_ms in inserted}
    fresh_keys = set(fresh)
    receipts: list[Receipt | None] = []
    skipped: list[Row] = []
    for row in rows:
        first = fresh.pop(row[_KEY], None)
        if first is None:
            skipped.append(row)
            receipts.append(None)
        else:
            receipts.append(Receipt(row[_KEY], first[0], first[1], fresh=True))
    if skipped:
        stored = await _existing(session, [row[_KEY] for row in skipped])
        resolved_elsewhere = [
            row[_KEY] for row in skipped if row[_KEY] not in stored and row[_ORIGIN] is not None
        ]
        if resolved_elsewhere:
            raise TransferStateError(f"already resolved or reversed: {resolved_elsewhere[:5]}")
        conflicts = [
            row[_KEY]
            for row in skipped
            if row[_KEY] not in stored
            or tuple(stored[row[_KEY]][3:]) != tuple(row[i] for i in _CONTENT_AT)
        ]
        if conflicts:
            raise IdempotencyConflictError(conflicts)
        for index, row in enumerate(rows):
            if receipts[index] is None:
                _, ident, posted_ms, *_ = stored[row[_KEY]]
                receipts[index] = Receipt(row[_KEY], ident, posted_ms, fresh=False)
    await _check_payouts(session, [row for row in rows if row[_KEY] in fresh_keys])
    touched = {row[_DEBIT] for row in rows} | {row[_CREDIT] for row in rows}
    await sync_limit_blocks(session, sorted(touched), posting.now_ms)
    return tuple(receipt for receipt in receipts if receipt is not None)


async def _check_payouts(session: Session, posted: Sequence[Row]) -> None:
    """Refunds pay out only what a rider has: a fare may use the credit limit, a payout not."""
    refunds = [transfer_from_row(row) for row in posted if row[_KIND] == TransferKind.REFUND]
    for item in refunds:
        state = await account_state(session, item.debit)
        if state is not None and state.available.minor < 0:
            raise InsufficientFundsError(f"{item.key}: {item.debit} cannot pay {item.amount}")


async def sync_limit_blocks(session: Session, account_ids: Sequence[str], now_ms: int) -> None:
    """Stop-list riders of `account_ids` below their credit limit; release those back above."""
    rows = await session.fetch_among(_MISMATCHES, account_ids)
    if not rows:
        return
    await session.executemany(
        "UPDATE accounts SET limit_blocked = $2 WHERE id = $1",
        [(account, bool(below)) for account, below in rows],
    )
    requests = [BlockChange(token_of(a), BlockReason.BALANCE, add=bool(b)) for a, b in rows]
    await change_blocks(session, requests, now_ms)


_REASONS = f"SELECT token, reason FROM blocks WHERE token {AMONG}"  # noqa: S608 (fixed text)


async def change_blocks(session: Session, requests: Sequence[BlockChange], now_ms: int) -> Plan:
    """Apply block changes and record every resulting stoplist version with its checksum."""
    # Locked first: every stoplist writer queues here, so versions never interleave.
    version, checksum = await session.lock_stoplist_head()
    tokens = list(dict.fromkeys(request.token for request in requests))
    held: dict[str, set[BlockReason]] = {token: set() for token in tokens}
    for token, reason in await session.fetch_among(_REASONS, tokens):
        held[token].add(BlockReason(reason))
    reasons = {token: frozenset(found) for token, found in held.items()}
    plan = plan_changes(Head(version, bytes(checksum)), reasons, requests)
    await session.executemany(
        "INSERT INTO blocks (token, reason, note, since_ms) VALUES ($1, $2, $3, $4)",
        [(r.token, r.reason.value, r.note, now_ms) for r in plan.reasons_added],
    )
    await session.executemany(
        "DELETE FROM blocks WHERE token = $1 AND reason = $2",
        [(r.token, r.reason.value) for r in plan.reasons_removed],
    )
    if plan.changes:
        await session.executemany(
            "INSERT INTO stoplist_changes (version, token, listed, checksum, at_ms)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(c.version, c.token, c.listed, c.checksum, now_ms) for c in plan.changes],
        )
        await session.execute(
            "UPDATE stoplist_head SET version = $1, checksum = $2, size = size + $3",
            plan.head.version,
            plan.head.checksum,
            plan.growth,
        )
    return plan


RENUMBER_STEP = 10_000_000
"""How far past a device's version `renumber_stoplist` moves the head: more versions than
a store can lose between a backup and its restore (each is one card entering or leaving
the list), so that no device holds the new one."""
RENUMBER_EVERY_MS = 3_600_000
"""At most one renumbering an hour: one restore needs one (every other device is then
behind the head), and a device whose key was stolen must not make the whole fleet fetch
the whole list at will."""
RENUMBER_REACH = 2**40
"""How far past the head a device's version may be for a renumbering: past any plausible
loss, even after renumberings the restored store never saw, yet so short that the 64-bit
versions would last a million years of renumberings."""


async def renumber_stoplist(
    session: Session, device: str, held: int, now_ms: int
) -> tuple[Head, bool]:
    """Move the stoplist's version RENUMBER_STEP past `held`, a version that `device` holds
    and this store never reached (or reached with another list); return the head and
    whether this call moved it. It does not when another request moved it first, when the
    last renumbering was within RENUMBER_EVERY_MS, or when `held` is RENUMBER_REACH or
    more past the head. The list is unchanged.

    A store restored from a backup has lost the versions it published since, and numbers
    on from its own head: a validator holding one of those refuses a lower version as a
    rollback and would keep its own list, blind to every block and release until the head
    passed it. Past the renumbering, every validator is behind the head and takes the
    store's list.
    """
    version, checksum = await session.lock_stoplist_head()
    head = Head(version, bytes(checksum))
    if version > held or held - version >= RENUMBER_REACH:
        return head, False
    ((last_ms,),) = await session.fetch("SELECT max(at_ms) FROM stoplist_renumberings")
    if last_ms is not None and now_ms - last_ms < RENUMBER_EVERY_MS:
        return head, False
    moved = held + RENUMBER_STEP
    await session.execute(
        "INSERT INTO stoplist_renumberings (version, previous, device, held, at_ms)"
        " VALUES ($1, $2, $3, $4, $5)",
        moved,
        version,
        device,
        held,
        now_ms,
    )
    await session.execute("UPDATE stoplist_head SET version = $1", moved)
    return Head(moved, head.checksum), True


async def set_credit_limit(session: Session, account_id: str, limit: int, now_ms: int) -> bool:
    """Change a rider's credit limit (and so perhaps its stoplist entry); False if unknown."""
    rows = await session.fetch(
        "UPDATE accounts SET credit_limit = $2 WHERE id = $1 AND kind = 'rider' RETURNING id",
        account_id,
        limit,
    )
    await sync_limit_blocks(session, [account_id], now_ms)
    return bool(rows)


_CLAIM = f"""
INSERT INTO fare_days (account, fare_day, revision, dirty, settled_ms)
VALUES ($1, $2, 1, {DAY_EVENTS} <> $4, $5)
ON CONFLICT (account, fare_day) DO UPDATE
SET revision = fare_days.revision + 1, dirty = excluded.dirty, settled_ms = excluded.settled_ms,
    parked_reason = NULL, parked_rules = NULL
WHERE fare_days.revision = $3 RETURNING revision
"""  # noqa: S608 (fixed text)


async def claim_settlement(session: Session, state: DayState, now_ms: int) -> bool:
    """Record settlement `state.revision + 1` of a day (no longer parked, if it was);
    False if another got there first.

    The day stays dirty if fares or reversals arrived since `state` was read: they are
    counted again here, inside the transaction that claims the revision.
    """
    day = state.day.isoformat()
    rows = await session.fetch(
        _CLAIM,
        state.account,
        day,
        state.revision,
        state.fares,
        now_ms,
    )
    return bool(rows)


def marking_fare_days(transfers: str) -> str:
    """The statement that marks for settlement the rider days that `transfers` (a condition
    on `transfers` rows) change: a rider's fare, or the reversal of one."""
    return f"""
INSERT INTO fare_days (account, fare_day)
SELECT CASE kind WHEN 'reversal' THEN credit ELSE debit END, fare_day FROM transfers
WHERE ({transfers}) AND (
    (kind = 'fare' AND {MOVES} AND substr(debit, 1, 6) = 'rider:')
    OR (kind = 'reversal' AND substr(credit, 1, 6) = 'rider:'))
GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (account, fare_day) DO UPDATE SET dirty = true WHERE NOT fare_days.dirty
"""  # noqa: S608 (fixed text)


_MARK_CLOSED = marking_fare_days("fare_day > $1 AND fare_day <= $2")


async def close_fare_days(session: Session, last: date) -> None:
    """Close the fare days up to `last`: mark each of their rider days for settlement.

    From then on a posting into one of them marks its day itself. On PostgreSQL the close
    row's update waits for the postings that read it (they share-lock it), so the marking
    statement after it sees their rows; a posting that comes later sees the new close.
    """
    ((closed,),) = await session.fetch("SELECT closed_through FROM fare_day_close")
    through = last.isoformat()
    if closed >= through:
        return
    moved = await session.fetch(
        "UPDATE fare_day_close SET closed_through = $2 WHERE closed_through = $1"
        " RETURNING closed_through",
        closed,
        through,
    )
    if moved:  # else another server closed them first
        await session.execute(_MARK_CLOSED, closed, through)
