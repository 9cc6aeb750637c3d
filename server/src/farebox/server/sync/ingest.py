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

import logging
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace

from farebox.protocol.keys import VerifyKey
from farebox.protocol.messages import Ack, Batch, Refusal
from farebox.protocol.records import EncodedRecord, MediaKind, Tap
from farebox.protocol.session import Duplicate, Links, Refused, answer, judge_links
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


def fare_taps(entries: Sequence[EncodedRecord], carriers: Carriers) -> list[FareTap]:
    """The ledger's taps among `entries`: accepted taps with a fare.

    A QR ticket was paid for when it was bought, so its validation is taken out of the
    ticket liability rather than the rider's account (ARCHITECTURE section 9).
    """
    taps = []
    for entry in entries:
        tap = tap_from_record(entry.record, carriers.of)
        if tap is not None:
            body = entry.record.body
            prepaid = isinstance(body, Tap) and body.media is MediaKind.QR
            taps.append(replace(tap, prepaid=True) if prepaid else tap)
    return taps


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


def fare_posting(
    entries: Sequence[EncodedRecord], books: Books, known: Container[str], now_ms: int
) -> writes.Posting:
    """The fare transfers of `entries`, and the accounts they name bar the `known` ones,
    to post at `now_ms`."""
    taps = fare_taps(entries, books.carriers)
    transfers = [fare_transfer(tap, books.policy) for tap in taps]
    return writes.Posting.of(transfers, fare_accounts(taps, books.credit_limit, known), now_ms)


_SEQ = TRANSFER_COLUMNS.index("seq")


@dataclass(frozen=True, slots=True)
class Upload:
    """A batch as its transaction takes it, in plain values made beforehand (`Upload.of`):
    its links, the rows of its records, the seqs of its taps, its ticket validations, and
    its postings, or the error that making them raised."""

    links: Links
    records: Sequence[Row]
    taps: Sequence[int]
    tickets: Sequence[TicketUse]
    posting: writes.Posting | Exception

    @classmethod
    def of(
        cls, batch: Batch, key: VerifyKey, books: Books, known: Container[str], now_ms: int
    ) -> Upload:
        entries = batch.entries
        try:
            posting: writes.Posting | Exception = fare_posting(entries, books, known, now_ms)
        except Exception as error:  # noqa: BLE001 - raised in the transaction, see `_take`
            posting = error
        return cls(
            Links.of(batch, key),
            record_rows(batch.device, entries, now_ms),
            [e.record.seq for e in entries if isinstance(e.record.body, Tap)],
            ticket_uses(entries),
            posting,
        )

    def posting_after(self, seq: int) -> writes.Posting:
        """The postings of the records after `seq` (the accounts all of them name)."""
        if isinstance(self.posting, Exception):
            raise self.posting
        if seq < self.links.first_seq:
            return self.posting
        rows = [row for row in self.posting.transfer_rows if row[_SEQ] > seq]
        return writes.Posting(rows, self.posting.account_rows, self.posting.now_ms)


@dataclass(frozen=True, slots=True)
class _Taken:
    """What the transaction of `_take` did: its result, the accounts it opened, the ticket
    uses it found on a second validator (ticket, device, first device), and the reason it
    refused the batch."""

    ingested: Ingested
    opened: Sequence[str] = ()
    alerts: Sequence[tuple[str, str, str]] = ()
    refusal: str | None = None


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
    # A batch whose taps make no valid postings fails here, after it was judged new.
    posting = upload.posting_after(held)
    # Postings come last: they lock the accounts they move, and a route's revenue
    # account is in every batch from its buses, so other uploads wait for that lock
    # until this transaction commits (on PostgreSQL; SQLite has one writer anyway).
    receipts = await writes.post_transfers(session, posting)
    tapped = sum(seq > held for seq in upload.taps)
    fresh = sum(r.fresh for r in receipts)
    ingested = Ingested(reply, len(new), tapped, fresh, len(alerts))
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
    taken = await store.run(_take, upload, nonce, now_ms)
    known.add(taken.opened)
    if taken.refusal is not None:
        log.warning("batch from %s refused: %s", batch.device, taken.refusal)
    for ticket, device, first in taken.alerts:
        log.warning("ticket %s used on %s after %s (possible copy)", ticket, device, first)
    return taken.ingested
