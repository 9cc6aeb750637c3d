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
_SET_ASIDE_RECORDS = (
    "SELECT u.device, u.seq, r.raw FROM unposted_taps u JOIN records r USING (device, seq)"
)
_PAGE = " ORDER BY u.device, u.seq LIMIT $3"
_EVERY_DEVICE_PAGE = f"{_SET_ASIDE_RECORDS} WHERE (u.device, u.seq) > ($1, $2){_PAGE}"
_ONE_DEVICE_PAGE = f"{_SET_ASIDE_RECORDS} WHERE u.device = $1 AND u.seq > $2{_PAGE}"


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


async def repost(
    store: Store, books: Books, known: KnownAccounts, now_ms: int, device: str | None = None
) -> tuple[int, int]:
    """Post the fares of the taps set aside (of `device`, or of every device); return how
    many were posted and how many are still set aside. Each is posted once: its row goes
    in the transaction that posts it. Those the ledger still refuses stay, with the new
    reason."""
    posted, seen, after = 0, 0, (device or "", 0)
    while True:
        page = await store.run(_set_aside_page, after, device is not None)
        seen += len(page)
        for owner, rows in itertools.groupby(page, key=itemgetter(0)):
            entries = [EncodedRecord.parse(bytes(raw)) for _, _, raw in rows]
            posting, unposted = fare_posting(entries, books, known, now_ms)
            await store.run(_note_reasons, owner, unposted)
            posted += await _post_parts(store, known, owner, posting)
        if len(page) < REPOST_PAGE:
            return posted, seen - posted
        after = (page[-1][0], page[-1][1])


async def _set_aside_page(session: Session, after: tuple[str, int], one: bool) -> list[Row]:
    """The next page of taps set aside after (device, seq): of that device alone if `one`."""
    return await session.fetch(_ONE_DEVICE_PAGE if one else _EVERY_DEVICE_PAGE, *after, REPOST_PAGE)


async def _post_parts(
    store: Store, known: KnownAccounts, device: str, posting: writes.Posting
) -> int:
    """Post `posting`'s fares, halving it where the ledger refuses a part: the taps it
    refuses one by one keep their rows, with the reason."""
    rows = posting.transfer_rows
    if not rows:
        return 0
    try:
        opened = await store.run(_post_set_aside, device, posting)
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
    return len(rows)


def _part(posting: writes.Posting, rows: Sequence[Row]) -> writes.Posting:
    """`posting` with only `rows`, and only the accounts they name."""
    named = {row[_DEBIT] for row in rows} | {row[_CREDIT] for row in rows}
    accounts = [account for account in posting.account_rows if account[0] in named]
    return writes.Posting(rows, accounts, posting.now_ms)


async def _post_set_aside(session: Session, device: str, posting: writes.Posting) -> list[str]:
    await writes.post_transfers(session, posting)
    await session.executemany(
        "DELETE FROM unposted_taps WHERE device = $1 AND seq = $2",
        [(device, row[_SEQ]) for row in posting.transfer_rows],
    )
    return posting.account_ids


async def _note_reasons(session: Session, device: str, unposted: Sequence[Unposted]) -> None:
    await session.executemany(
        "UPDATE unposted_taps SET reason = $3 WHERE device = $1 AND seq = $2",
        [(device, seq, reason) for seq, reason in unposted],
    )
