"""The journal: append-only, gap-free and hash-chained records, and their acknowledgement.

These functions run inside a transaction that the store opens; the journal row of a tap
is committed together with the rider history it feeds, or not at all. A record is pruned
only once acknowledged: past retention, or at once when the journal is full. The newest
record is always kept because the next one names its hash.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

from farebox.agent.errors import StoreError
from farebox.agent.store.database import read_meta, write_meta
from farebox.protocol.chain import Cursor, verify_segment
from farebox.protocol.errors import ProtocolError
from farebox.protocol.records import EncodedRecord, Record

# The largest clock offset kept: a century sets right an RTC that fell back to 1970. A
# larger one is a server's fault; kept, it would judge every tap by a wrong clock.
MAX_CLOCK_OFFSET_MS = 100 * 365 * 86_400_000


def head(conn: sqlite3.Connection, device: str) -> Cursor:
    """The newest record's seq and hash, or the genesis cursor of an empty journal."""
    row = conn.execute("SELECT seq, raw, digest FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return acked_cursor(conn, device)
    seq, raw, digest = int(row[0]), bytes(row[1]), bytes(row[2])
    if hashlib.sha256(raw).digest() != digest:
        raise StoreError(f"journal record {seq} does not match its stored hash")
    return Cursor(seq, digest)


def insert(conn: sqlite3.Connection, entry: EncodedRecord) -> None:
    conn.execute(
        "INSERT INTO journal (seq, raw, digest, time_ms) VALUES (?, ?, ?, ?)",
        (entry.record.seq, entry.raw, entry.digest, entry.record.time_ms),
    )


def next_record(cursor: Cursor, record: Record) -> EncodedRecord:
    """`record` must already carry cursor.seq + 1 and cursor.head; encode it."""
    if record.seq != cursor.seq + 1 or record.prev != cursor.head:
        raise StoreError(f"record {record.seq} does not follow the journal head {cursor.seq}")
    return EncodedRecord.of(record)


def acked_cursor(conn: sqlite3.Connection, device: str) -> Cursor:
    seq, head_hex = read_meta(conn, "acked_seq"), read_meta(conn, "acked_head")
    if seq is None or head_hex is None:
        return Cursor.start(device)
    return Cursor(int(seq), bytes.fromhex(head_hex))


def pending(conn: sqlite3.Connection, after: int, limit: int) -> list[EncodedRecord]:
    """Up to `limit` records after seq `after`, oldest first."""
    rows = conn.execute(
        "SELECT raw FROM journal WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    ).fetchall()
    return EncodedRecord.parse_all([bytes(row[0]) for row in rows])


def acknowledge(conn: sqlite3.Connection, cursor: Cursor, now_ms: int) -> None:
    """Mark every record through `cursor` acknowledged, checking the server holds our hash."""
    row = conn.execute("SELECT digest FROM journal WHERE seq = ?", (cursor.seq,)).fetchone()
    if row is None or bytes(row[0]) != cursor.head:
        raise StoreError(f"acknowledgement of record {cursor.seq} does not match the journal")
    conn.execute(
        "UPDATE journal SET acked_ms = ? WHERE seq <= ? AND acked_ms IS NULL",
        (now_ms, cursor.seq),
    )
    write_meta(conn, "acked_seq", str(cursor.seq))
    write_meta(conn, "acked_head", cursor.head.hex())


def resume_point(conn: sqlite3.Connection, device: str, seq: int) -> bytes | None:
    """The hash at `seq` (the genesis for 0) if every record after it is still kept."""
    first = conn.execute("SELECT MIN(seq) FROM journal").fetchone()[0]
    if first is not None and first > seq + 1:
        return None  # records after `seq` were pruned: they cannot be sent again
    if seq == 0:
        return Cursor.start(device).head
    row = conn.execute("SELECT digest FROM journal WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else bytes(row[0])


def unacknowledge(conn: sqlite3.Connection, cursor: Cursor) -> None:
    """Move the acked cursor back to `cursor`: the records after it count as unacked again."""
    conn.execute("UPDATE journal SET acked_ms = NULL WHERE seq > ?", (cursor.seq,))
    write_meta(conn, "acked_seq", str(cursor.seq))
    write_meta(conn, "acked_head", cursor.head.hex())


def prune(conn: sqlite3.Connection, acked_before_ms: int | None = None) -> int:
    """Delete records acknowledged before `acked_before_ms` (or ever, if None), keeping the
    newest; the count.

    Acknowledged records are always the oldest ones (the acked cursor only moves forward
    over the chain, or back to a seq whose later records are all unacked again), so this
    never leaves an unacknowledged record behind a hole.
    """
    cursor = conn.execute(
        "DELETE FROM journal WHERE acked_ms IS NOT NULL AND (? IS NULL OR acked_ms < ?) "
        "AND seq < (SELECT MAX(seq) FROM journal)",
        (acked_before_ms, acked_before_ms),
    )
    return cursor.rowcount


@dataclass(frozen=True, slots=True)
class Figures:
    """The journal's state as `status` and the sync heartbeat report it."""

    head_seq: int
    acked_seq: int
    unacked: int
    oldest_unacked_ms: int | None
    kept: int
    last_sync_ms: int | None
    clock_offset_ms: int | None
    size_bytes: int


def figures(conn: sqlite3.Connection, device: str) -> Figures:
    acked = acked_cursor(conn, device)
    unacked, oldest = conn.execute(
        "SELECT COUNT(*), MIN(time_ms) FROM journal WHERE seq > ?", (acked.seq,)
    ).fetchone()
    kept = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    last_sync, offset = read_meta(conn, "last_sync_ms"), read_meta(conn, "clock_offset_ms")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return Figures(
        head_seq=head(conn, device).seq,
        acked_seq=acked.seq,
        unacked=int(unacked),
        oldest_unacked_ms=None if oldest is None else int(oldest),
        kept=int(kept),
        last_sync_ms=None if last_sync is None else int(last_sync),
        clock_offset_ms=_plausible_offset(offset),
        size_bytes=int(pages) * int(size),
    )


def _plausible_offset(held: str | None) -> int | None:
    if held is None:
        return None
    # A database written before offsets were bounded may hold one that is not.
    offset = int(held)
    return offset if abs(offset) <= MAX_CLOCK_OFFSET_MS else None


def verify(conn: sqlite3.Connection, device: str) -> Cursor:
    """Check every record kept continues the chain; return the head, or raise StoreError."""
    first = conn.execute("SELECT MIN(seq) FROM journal").fetchone()[0]
    if first is None:
        return head(conn, device)
    start = Cursor.start(device)
    if first > 1:
        row = conn.execute("SELECT raw FROM journal WHERE seq = ?", (first,)).fetchone()
        record = EncodedRecord.parse(bytes(row[0])).record
        start = Cursor(record.seq - 1, record.prev)
    rows = conn.execute("SELECT raw, digest FROM journal ORDER BY seq")
    cursor = start
    try:
        for raw, digest in rows:
            entry = EncodedRecord.parse(bytes(raw))
            if entry.digest != bytes(digest):
                raise StoreError(f"journal record {entry.record.seq} does not match its hash")
            cursor = verify_segment(cursor, device, (entry,))
    except ProtocolError as error:
        raise StoreError(f"the journal's chain is broken: {error}") from None
    return cursor
