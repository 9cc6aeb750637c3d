"""Exactly-once ingest: a device's batch judged, stored and posted in one transaction.

Everything a batch needs is made before the store is taken (`Upload`: its links for the
protocol's `judge_links`, its records' rows, its postings), so that the transaction holds
plain values and only compares and writes: it judges the links against the device's
cursor, keeps the new records raw in the append-only `records` table, posts their
accepted taps to the ledger and moves the cursor, all at once. A re-sent batch is a
duplicate that posts nothing; a gap, a fork or a bad signature is refused and counted,
with the device's cursor in the answer so that it knows where to resume.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter

from farebox.protocol.keys import VerifyKey
from farebox.protocol.messages import Ack, Batch, Refusal
from farebox.protocol.records import EncodedRecord, MediaKind, Tap
from farebox.protocol.session import Duplicate, Links, Refused, answer, judge_links
from farebox.server.errors import LedgerError
from farebox.server.ledger import posting, writes
from farebox.server.ledger.accounts import Account, KnownAccounts, rider_account
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.posting import FareTap, fare_transfer, tap_from_record
from farebox.server.ledger.store import AMONG, TRANSFER_COLUMNS, Row, Session, Store
from farebox.server.sync import devices
from farebox.server.sync.devices import Nonce

log = logging.getLogger(__name__)

RECORD_COLUMNS = ("device", "seq", "digest", "raw", "event_ms", "received_ms")


@dataclass(frozen=True, slots=True)
class Carriers:
    """Which carrier's revenue a route's fares go to."""

    default: str = "city"
    routes: Mapping[str, str] = field(default_factory=dict)

    def of(self, route: str) -> str:
        return self.routes.get(route, self.default)


@dataclass(frozen=True, slots=True)
class Books:
    """What ingest posts with: the fare-day policy, new riders' credit limit, carriers."""

    policy: FareDayPolicy
    credit_limit: int = 0
    carriers: Carriers = field(default_factory=Carriers)


@dataclass(frozen=True, slots=True)
class Ingested:
    """The answer for the device, what this batch added, and how it was judged."""

    answer: Ack | Refusal
    records: int = 0
    taps: int = 0
    postings: int = 0
    alerts: int = 0
    unposted: int = 0

    @property
    def outcome(self) -> str:
        """ack, duplicate (nothing new) or the refusal's code (gap, fork, bad_signature)."""
        if isinstance(self.answer, Refusal):
            return self.answer.code.value
        return "ack" if self.records else "duplicate"


def record_rows(
    device: str, entries: Sequence[EncodedRecord], now_ms: int
) -> list[tuple[object, ...]]:
    """The `records` rows (RECORD_COLUMNS) of `entries` from `device`, received at `now_ms`."""
    return [(device, e.record.seq, e.digest, e.raw, e.record.time_ms, now_ms) for e in entries]


def fare_tap(entry: EncodedRecord, carriers: Carriers) -> FareTap | None:
    """The ledger's tap of `entry` if it is an accepted tap with a fare, else None.

    A QR ticket was paid for when it was bought, so its validation is taken out of the
    ticket liability rather than the rider's account (ARCHITECTURE section 9).
    """
    tap = tap_from_record(entry.record, carriers.of)
    if tap is None:
        return None
    body = entry.record.body
    prepaid = isinstance(body, Tap) and body.media is MediaKind.QR
    return replace(tap, prepaid=True) if prepaid else tap


def fare_accounts(
    taps: Sequence[FareTap], credit_limit: int, known: Container[str] = frozenset()
) -> list[Account]:
    """The accounts `taps` name bar the `known` ones, new riders getting `credit_limit`."""

    def rider(token: str, currency: str, category: str | None) -> Account:
        return rider_account(token, currency, credit_limit=credit_limit, category=category)

    return posting.fare_accounts(taps, rider, known)


TicketUse = tuple[str, str, int, int]
"""An accepted QR ticket's validation: ticket, device, seq, time."""


def ticket_uses(entries: Sequence[EncodedRecord]) -> list[TicketUse]:
    """The validations of QR tickets among `entries` that spend a ride (not re-taps)."""
    uses = []
    for entry in entries:
        record, body = entry.record, entry.record.body
        if not isinstance(body, Tap) or body.media is not MediaKind.QR or body.fare is None:
            continue
        if "retap" not in body.flags:
            uses.append((body.token, record.device, record.seq, record.time_ms))
    return uses


_FIRST_USES = f"SELECT token, device, seq FROM ticket_uses WHERE token {AMONG}"  # noqa: S608 (fixed text)
_NOTE_FIRST_USE = (
    "INSERT INTO ticket_uses (token, device, seq, used_ms) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (token) DO NOTHING"
)


async def _first_uses(session: Session, tokens: Sequence[str]) -> dict[str, tuple[str, int]]:
    return {
        token: (device, seq)
        for token, device, seq in await session.fetch_among(_FIRST_USES, tokens)
    }


async def _check_ticket_uses(
    session: Session, uses: Sequence[TicketUse]
) -> list[tuple[str, str, str]]:
    """Remember each ticket's first use; return the uses on another validator (alerts), as
    (ticket, device, first device).

    Validators decide offline, so the same single-ride ticket can pass two of them before
    either syncs; the server is where that shows. Two such uploads can also arrive at once
    on PostgreSQL: each notes the first uses it has not seen, in one order of tickets (so
    that the two wait for each other rather than deadlock), skipping those the other has
    just noted, and reads them again to learn which came first.
    """
    if not uses:
        return []
    first = await _first_uses(session, [token for token, *_ in uses])
    candidates: dict[str, TicketUse] = {}
    for use in uses:
        if use[0] not in first:
            candidates.setdefault(use[0], use)
    if candidates:
        await session.executemany(_NOTE_FIRST_USE, sorted(candidates.values()))
        first |= await _first_uses(session, list(candidates))
    copies = [
        (token, device, seq, used_ms, *first[token])
        for token, device, seq, used_ms in uses
        if first[token][0] != device
    ]
    await session.executemany(
        "INSERT INTO ticket_alerts (token, device, seq, used_ms, first_device, first_seq)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        copies,
    )
    return [(token, device, first_device) for token, device, _, _, first_device, _ in copies]


Unposted = tuple[int, str]
"""An accepted tap whose fare is not posted: its seq, and why."""


def fare_posting(
    entries: Sequence[EncodedRecord], books: Books, known: Container[str], now_ms: int
) -> tuple[writes.Posting, list[Unposted]]:
    """The fare transfers of `entries`, and the accounts they name bar the `known` ones,
    to post at `now_ms`; and the taps set aside because the ledger cannot post them (a
    route or token it cannot name), each with the reason."""
    taps: list[FareTap] = []
    transfers = []
    unposted: list[Unposted] = []
    for entry in entries:
        try:
            tap = fare_tap(entry, books.carriers)
            if tap is None:
                continue
            transfers.append(fare_transfer(tap, books.policy))
        except ValueError as error:
            unposted.append((entry.record.seq, str(error)))
            continue
        taps.append(tap)
    accounts = fare_accounts(taps, books.credit_limit, known)
    return writes.Posting.of(transfers, accounts, now_ms), unposted


_SEQ, _DEBIT, _CREDIT = map(TRANSFER_COLUMNS.index, ("seq", "debit", "credit"))


@dataclass(frozen=True, slots=True)
class Upload:
    """A batch as its transaction takes it, in plain values made beforehand (`Upload.of`):
    its links, the rows of its records, the seqs of its taps, its ticket validations, its
    postings, and the taps set aside."""

    links: Links
    records: Sequence[Row]
    taps: Sequence[int]
    tickets: Sequence[TicketUse]
    posting: writes.Posting
    unposted: Sequence[Unposted]

    @classmethod
    def of(
        cls, batch: Batch, key: VerifyKey, books: Books, known: Container[str], now_ms: int
    ) -> Upload:
        entries = batch.entries
        posting, unposted = fare_posting(entries, books, known, now_ms)
        return cls(
            Links.of(batch, key),
            record_rows(batch.device, entries, now_ms),
            [e.record.seq for e in entries if isinstance(e.record.body, Tap)],
            ticket_uses(entries),
            posting,
            unposted,
        )

    def posting_after(self, seq: int) -> writes.Posting:
        """The postings of the records after `seq` (the accounts all of them name)."""
        if seq < self.links.first_seq:
            return self.posting
        rows = [row for row in self.posting.transfer_rows if row[_SEQ] > seq]
        return writes.Posting(rows, self.posting.account_rows, self.posting.now_ms)

    def set_aside(self, reason: str) -> Upload:
        """This upload with every fare set aside for `reason` instead of posted."""
        unposted = [*self.unposted, *((row[_SEQ], reason) for row in self.posting.transfer_rows)]
        nothing = writes.Posting((), (), self.posting.now_ms)
        return replace(self, posting=nothing, unposted=sorted(unposted))


@dataclass(frozen=True, slots=True)
class _Taken:
    """What the transaction of `_take` did: its result, the accounts it opened, the ticket
    uses it found on a second validator (ticket, device, first device), and the reason it
    refused the batch."""

    ingested: Ingested
    opened: Sequence[str] = ()
    alerts: Sequence[tuple[str, str, str]] = ()
    refusal: str | None = None


_SET_ASIDE = "INSERT INTO unposted_taps (device, seq, reason, noted_ms) VALUES ($1, $2, $3, $4)"


async def _take(session: Session, upload: Upload, nonce: Nonce, now_ms: int) -> _Taken:
    """The transaction of `ingest`: admit the device, judge the batch, take what is new."""
    device_id = upload.links.device
    device = await devices.admit(session, device_id, nonce, now_ms, lock=True)
    judgement = judge_links(device.cursor, upload.links)
    reply = answer(device_id, judgement, device.cursor, now_ms)
    if isinstance(judgement, Duplicate):
        return _Taken(Ingested(reply))
    if isinstance(judgement, Refused):
        await devices.count_refusal(session, device_id)
        return _Taken(Ingested(reply), refusal=judgement.message)
    held = device.cursor.seq
    new = upload.records[judgement.held :]
    await session.insert_rows("records", RECORD_COLUMNS, new)
    alerts = await _check_ticket_uses(session, [use for use in upload.tickets if use[2] > held])
    await devices.advance(session, device_id, judgement.cursor, now_ms)
    unposted = [(device_id, seq, why, now_ms) for seq, why in upload.unposted if seq > held]
    if unposted:
        await session.executemany(_SET_ASIDE, unposted)
    posting = upload.posting_after(held)
    # Postings come last: they lock the accounts they move, and a route's revenue
    # account is in every batch from its buses, so other uploads wait for that lock
    # until this transaction commits (on PostgreSQL; SQLite has one writer anyway).
    receipts = await writes.post_transfers(session, posting)
    tapped = sum(seq > held for seq in upload.taps)
    fresh = sum(r.fresh for r in receipts)
    ingested = Ingested(reply, len(new), tapped, fresh, len(alerts), len(unposted))
    return _Taken(ingested, posting.account_ids, alerts)


async def ingest(
    store: Store,
    books: Books,
    batch: Batch,
    now_ms: int,
    known: KnownAccounts,
    nonce: Nonce,
    key: VerifyKey,
) -> Ingested:
    """Judge `batch` against its device's cursor and take what is new, exactly once.

    The upload that carried it was signed with `nonce`: the device is admitted (known, not
    revoked, no replay) in the same transaction. Its checkpoint is verified with `key`,
    the device's key. `known` holds accounts seen to exist; those this batch opens are
    added once committed.
    """
    upload = Upload.of(batch, key, books, known, now_ms)
    try:
        taken = await store.run(_take, upload, nonce, now_ms)
    except LedgerError as error:
        # The ledger refused the batch's fares as a whole (a rider's account of another
        # currency): the records are taken all the same, with every fare set aside, and
        # then posted part by part. Never does one tap hold up its device's chain.
        taken = await store.run(_take, upload.set_aside(str(error)), nonce, now_ms)
        posted, _ = await repost(store, books, known, now_ms, batch.device)
        left = max(0, taken.ingested.unposted - posted)
        taken = replace(taken, ingested=replace(taken.ingested, postings=posted, unposted=left))
    known.add(taken.opened)
    if taken.refusal is not None:
        log.warning("batch from %s refused: %s", batch.device, taken.refusal)
    if taken.ingested.unposted:
        log.error(
            "batch from %s: %d taps set aside, not posted (see farebox-server taps list)",
            batch.device,
            taken.ingested.unposted,
        )
    for ticket, device, first in taken.alerts:
        log.warning("ticket %s used on %s after %s (possible copy)", ticket, device, first)
    return taken.ingested


# Taps set aside: listed for the operator, and posted again once their cause is mended.

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
