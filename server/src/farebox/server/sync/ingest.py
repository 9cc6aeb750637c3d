"""Exactly-once ingest: a device's batch judged, stored and posted in one transaction.

The protocol's `judge` compares the batch with the device's cursor; new records are kept
raw in the append-only `records` table, their accepted taps are posted to the ledger, and
the cursor moves, all in the same database transaction. A re-sent batch is a duplicate
that posts nothing; a gap, a fork or a bad signature is refused and counted, with the
device's cursor in the answer so that it knows where to resume.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace

from farebox.protocol.messages import Ack, Batch, Refusal
from farebox.protocol.records import EncodedRecord, MediaKind, Tap
from farebox.protocol.session import Accepted, Duplicate, answer, judge
from farebox.server.ledger import posting, writes
from farebox.server.ledger.accounts import Account, KnownAccounts, rider_account
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.posting import FareTap, fare_transfer, tap_from_record
from farebox.server.ledger.store import Session, Store
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


async def store_records(
    session: Session, device: str, entries: Sequence[EncodedRecord], now_ms: int
) -> None:
    """Keep `entries` raw in the append-only `records` table, received at `now_ms`."""
    await session.insert_rows("records", RECORD_COLUMNS, record_rows(device, entries, now_ms))


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


async def _ticket_uses(
    session: Session, entries: Sequence[EncodedRecord]
) -> list[tuple[str, str, str]]:
    """Remember each accepted QR ticket's first use; a use on another validator is an alert,
    returned as (ticket, device, first device).

    Validators decide offline, so the same single-ride ticket can pass two of them before
    either syncs; the server is where that shows.
    """
    alerts = []
    for entry in entries:
        record, body = entry.record, entry.record.body
        if not isinstance(body, Tap) or body.media is not MediaKind.QR or body.fare is None:
            continue
        if "retap" in body.flags:
            continue
        first = await session.fetch(
            "SELECT device, seq FROM ticket_uses WHERE token = $1", body.token
        )
        if not first:
            await session.execute(
                "INSERT INTO ticket_uses (token, device, seq, used_ms) VALUES ($1, $2, $3, $4)",
                body.token, record.device, record.seq, record.time_ms,
            )  # fmt: skip
        elif first[0][0] != record.device:
            alerts.append((body.token, record.device, first[0][0]))
            await session.execute(
                "INSERT INTO ticket_alerts (token, device, seq, used_ms, first_device, "
                "first_seq) VALUES ($1, $2, $3, $4, $5, $6)",
                body.token, record.device, record.seq, record.time_ms, first[0][0], first[0][1],
            )  # fmt: skip
    return alerts


def fare_posting(
    entries: Sequence[EncodedRecord], books: Books, known: Container[str], now_ms: int
) -> writes.Posting:
    """The fare transfers of `entries`, and the accounts they name bar the `known` ones,
    to post at `now_ms`."""
    taps = fare_taps(entries, books.carriers)
    transfers = [fare_transfer(tap, books.policy) for tap in taps]
    return writes.Posting.of(transfers, fare_accounts(taps, books.credit_limit, known), now_ms)


@dataclass(frozen=True, slots=True)
class _Taken:
    """What the transaction of `_take` did: its result, the accounts it opened, and the
    ticket uses it found on a second validator (ticket, device, first device)."""

    ingested: Ingested
    opened: Sequence[str] = ()
    alerts: Sequence[tuple[str, str, str]] = ()
    refusal: str | None = None


async def _take(
    session: Session,
    batch: Batch,
    books: Books,
    nonce: Nonce,
    now_ms: int,
    prepared: writes.Posting | None,
) -> _Taken:
    """The transaction of `ingest`: admit the device, judge the batch, take what is new."""
    device = await devices.admit(session, batch.device, nonce, now_ms, lock=True)
    judgement = judge(device.cursor, batch, device.key)
    if isinstance(judgement, Duplicate):
        return _Taken(Ingested(answer(batch.device, judgement, device.cursor, now_ms)))
    if not isinstance(judgement, Accepted):
        await devices.count_refusal(session, batch.device)
        reply = answer(batch.device, judgement, device.cursor, now_ms)
        return _Taken(Ingested(reply), refusal=judgement.message)
    new = judgement.new
    await store_records(session, batch.device, new, now_ms)
    alerts = await _ticket_uses(session, new)
    await devices.advance(session, batch.device, judgement.cursor, now_ms)
    if prepared is not None and len(new) == len(batch.entries):
        posting = prepared
    else:
        # Accounts already open are skipped by the insert: the server's memory of them is
        # not at hand here (a partly re-sent batch is rare).
        posting = fare_posting(new, books, frozenset(), now_ms)
    # Postings come last: they lock the accounts they move, and a route's revenue
    # account is in every batch from its buses, so other uploads wait for that lock
    # until this transaction commits (on PostgreSQL; SQLite has one writer anyway).
    receipts = await writes.post_transfers(session, posting)
    reply = answer(batch.device, judgement, device.cursor, now_ms)
    tapped = sum(isinstance(e.record.body, Tap) for e in new)
    fresh = sum(r.fresh for r in receipts)
    return _Taken(
        Ingested(reply, len(new), tapped, fresh, len(alerts)), posting.account_ids, alerts
    )


async def ingest(
    store: Store, books: Books, batch: Batch, now_ms: int, known: KnownAccounts, nonce: Nonce
) -> Ingested:
    """Judge `batch` against its device's cursor and take what is new, exactly once.

    The upload that carried it was signed with `nonce`: the device is admitted (known, not
    revoked, no replay) in the same transaction. `known` holds accounts seen to exist;
    those this batch opens are added once committed.
    """
    # Made before the store is taken, so that one upload's transaction holds the store
    # only for its statements; redone inside for the new part of a partly re-sent batch,
    # and for a batch whose taps do not make valid postings, so that such a batch fails
    # (or is judged a duplicate, a gap, a fork) exactly where and as it did before.
    try:
        prepared: writes.Posting | None = fare_posting(batch.entries, books, known, now_ms)
    except Exception:  # noqa: BLE001 - the same work inside the transaction raises it
        prepared = None
    taken = await store.run(_take, batch, books, nonce, now_ms, prepared)
    known.add(taken.opened)
    if taken.refusal is not None:
        log.warning("batch from %s refused: %s", batch.device, taken.refusal)
    for ticket, device, first in taken.alerts:
        log.warning("ticket %s used on %s after %s (possible copy)", ticket, device, first)
    return taken.ingested
