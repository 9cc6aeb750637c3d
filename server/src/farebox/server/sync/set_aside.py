"""Taps set aside: listed for the operator, and posted again once their cause is mended.

A tap whose fare the ledger cannot post is kept in `unposted_taps` with the reason, beside
its stored record (see `ingest`). `repost` makes each one's fare again from that record
and posts it, deleting its row in the same transaction, so that a tap is posted once;
where the ledger refuses a part, it halves the part until only the refused taps are left.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from operator import itemgetter

from farebox.protocol.records import EncodedRecord
from farebox.server.errors import LedgerError
from farebox.server.ledger import writes
from farebox.server.ledger.accounts import KnownAccounts
from farebox.server.ledger.store import TRANSFER_COLUMNS, Row, Session, Store
from farebox.server.sync.fares import Books, Unposted, fare_posting

_SEQ, _DEBIT, _CREDIT = map(TRANSFER_COLUMNS.index, ("seq", "debit", "credit"))

SetAside = tuple[str, int, str, int]
"""A tap set aside: device, seq, reason, and when it was set aside."""
REPOST_PAGE = 5000
"""Taps set aside read and posted at a time by `repost`."""
_SET_ASIDE_RECORDS = (
    "SELECT u.device, u.seq, r.raw FROM unposted_taps u JOIN records r USING (device, seq)"
)
_ORDER = " ORDER BY u.device, u.seq"
_EVERY_DEVICE_PAGE = f"{_SET_ASIDE_RECORDS} WHERE (u.device, u.seq) > ($1, $2){_ORDER} LIMIT $3"
_ONE_BATCH = f"{_SET_ASIDE_RECORDS} WHERE u.device = $1 AND u.seq BETWEEN $2 AND $3{_ORDER}"


async def set_aside_taps(session: Session, limit: int) -> list[SetAside]:
    """The first `limit` taps set aside, by device and seq."""
    rows = await session.fetch(
        "SELECT device, seq, reason, noted_ms FROM unposted_taps ORDER BY device, seq LIMIT $1",
        limit,
    )
    return [(str(device), int(seq), str(reason), int(noted)) for device, seq, reason, noted in rows]


async def set_aside_count(session: Session) -> int:
    ((count,),) = await session.fetch("SELECT count(*) FROM unposted_taps")
    return int(count)


async def repost(store: Store, books: Books, known: KnownAccounts, now_ms: int) -> int:
    """Post the fares of every tap set aside; return how many this call posted. Each is
    posted once: its row goes in the transaction that posts it. Those the ledger still
    refuses stay, with the new reason."""
    posted, after = 0, ("", 0)
    while True:
        page = await store.run(_fetch, _EVERY_DEVICE_PAGE, *after, REPOST_PAGE)
        posted += await _post_page(store, books, known, now_ms, page)
        if len(page) < REPOST_PAGE:
            return posted
        after = (page[-1][0], page[-1][1])


async def repost_batch(
    store: Store, books: Books, known: KnownAccounts, now_ms: int, device: str, seqs: range
) -> int:
    """`repost` of one batch's taps set aside: `device`'s records numbered in `seqs`."""
    page = await store.run(_fetch, _ONE_BATCH, device, seqs.start, seqs.stop - 1)
    return await _post_page(store, books, known, now_ms, page)


async def _fetch(session: Session, sql: str, *args: object) -> list[Row]:
    return await session.fetch(sql, *args)


async def _post_page(
    store: Store, books: Books, known: KnownAccounts, now_ms: int, page: Sequence[Row]
) -> int:
    posted = 0
    for owner, rows in itertools.groupby(page, key=itemgetter(0)):
        entries = [EncodedRecord.parse(bytes(raw)) for _, _, raw in rows]
        posting, unposted = fare_posting(entries, books, known, now_ms)
        if unposted:
            await store.run(_note_reasons, owner, unposted)
        posted += await _post_parts(store, known, owner, posting)
    return posted


async def _post_parts(
    store: Store, known: KnownAccounts, device: str, posting: writes.Posting
) -> int:
    """Post `posting`'s fares, halving it where the ledger refuses a part: the taps it
    refuses one by one keep their rows, with the reason."""
    rows = posting.transfer_rows
    if not rows:
        return 0
    try:
        opened, fresh = await store.run(_post_set_aside, device, posting)
    except LedgerError as error:
        if len(rows) == 1:
            await store.run(_note_reasons, device, [(rows[0][_SEQ], str(error))])
            return 0
        half = len(rows) // 2
        return sum([
            await _post_parts(store, known, device, _part(posting, rows[:half])),
            await _post_parts(store, known, device, _part(posting, rows[half:])),
        ])  # fmt: skip
    known.add(opened)
    return fresh


def _part(posting: writes.Posting, rows: Sequence[Row]) -> writes.Posting:
    """`posting` with only `rows`, and only the accounts they name."""
    named = {row[_DEBIT] for row in rows} | {row[_CREDIT] for row in rows}
    accounts = [account for account in posting.account_rows if account[0] in named]
    return writes.Posting(rows, accounts, posting.now_ms)


async def _post_set_aside(
    session: Session, device: str, posting: writes.Posting
) -> tuple[list[str], int]:
    """Post the fares and forget them as set aside: the accounts named, and how many of
    the fares this posted (another process may have posted some a moment before)."""
    receipts = await writes.post_transfers(session, posting)
    await session.executemany(
        "DELETE FROM unposted_taps WHERE device = $1 AND seq = $2",
        [(device, row[_SEQ]) for row in posting.transfer_rows],
    )
    return posting.account_ids, sum(receipt.fresh for receipt in receipts)


async def _note_reasons(session: Session, device: str, unposted: Sequence[Unposted]) -> None:
    await session.executemany(
        "UPDATE unposted_taps SET reason = $3 WHERE device = $1 AND seq = $2",
        [(device, seq, reason) for seq, reason in unposted],
    )
