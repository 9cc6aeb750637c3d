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
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace

from farebox.protocol.keys import VerifyKey
from farebox.protocol.messages import Ack, Batch, Refusal
from farebox.protocol.records import EncodedRecord, MediaKind, Tap
from farebox.protocol.session import Duplicate, Links, Refused, answer, judge_links
from farebox.server.errors import LedgerError
from farebox.server.ledger import writes
from farebox.server.ledger.accounts import KnownAccounts
from farebox.server.ledger.store import AMONG, TRANSFER_COLUMNS, Row, Session, Store
from farebox.server.sync import devices, set_aside
from farebox.server.sync.devices import Nonce
from farebox.server.sync.fares import Books, Unposted, fare_posting

log = logging.getLogger(__name__)

RECORD_COLUMNS = ("device", "seq", "digest", "raw", "event_ms", "received_ms")


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


TicketUse = tuple[str, str, int, int]
"""An accepted QR ticket's validation: ticket, device, seq, time."""


def ticket_uses(entries: Sequence[EncodedRecord]) -> list[TicketUse]:
    """The validations of QR tickets among `entries` that spend a ride (not re-taps).

    A validator names a ticket `qr:` and hex digits; a token that is not printable text
    (PostgreSQL's text refuses NUL) names no ticket another validator could see again.
    """
    uses = []
    for entry in entries:
        record, body = entry.record, entry.record.body
        if not isinstance(body, Tap) or body.media is not MediaKind.QR or body.fare is None:
            continue
        if "retap" not in body.flags and body.token.isprintable():
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


_SEQ = TRANSFER_COLUMNS.index("seq")


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
        if taken.ingested.unposted:  # else another process took the batch first
            seqs = range(upload.links.first_seq, batch.entries[-1].record.seq + 1)
            posted = await set_aside.repost_batch(store, books, known, now_ms, batch.device, seqs)
            left = taken.ingested.unposted - posted
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
