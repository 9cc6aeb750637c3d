"""The store: one state database behind a small API, used from one thread only.

Every method is blocking; the runtime calls them on its store thread. `record` is the
tap path: it appends the next record of the chain (with the rider history it feeds) in
one transaction and returns only once SQLite has committed it with synchronous=FULL, so
the caller may give feedback. Any SQLite failure there becomes JournalUnavailableError:
the tap is not accepted and the validator goes out of service until `probe` succeeds.
A full database does not wait for retention: its acknowledged records make way at once
(the server holds them), on the tap path and at each probe.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

from farebox.agent.errors import (
    CacheError,
    JournalUnavailableError,
    StoreError,
    WrongDeviceError,
)
from farebox.agent.store import caches, history, journal
from farebox.agent.store.caches import Caches, PreparedPackage
from farebox.agent.store.database import PAGE_SIZE, connect, read_meta, transaction, write_meta
from farebox.agent.store.history import PastTap, TicketUse
from farebox.protocol.chain import Cursor
from farebox.protocol.keys import VerifyKey
from farebox.protocol.packages import Package
from farebox.protocol.records import ClockState, EncodedRecord, Event, Location, Record, Tap

log = logging.getLogger(__name__)
T = TypeVar("T")
# The reserve that acknowledgements and pruning may spend when the journal is full.
BALLAST_BYTES = 16 * PAGE_SIZE
HISTORY_KEPT_MS = 86_400_000
"""The rider history a full journal keeps when it must forget some: a day, enough for the
re-tap, passback and transfer checks and the day's cap."""


class Store:
    """The journal, caches and history of one device, in one SQLite file."""

    def __init__(self, conn: sqlite3.Connection, device: str) -> None:
        self._conn = conn
        self.device = device
        self._cursor = journal.head(conn, device)
        self._acked = journal.acked_cursor(conn, device)
        self._cursor_stale = False
        self.caches = caches.load(conn)

    @classmethod
    def open(
        cls, path: Path, device: str, *, lock_timeout_ms: int, max_size_bytes: int | None = None
    ) -> Store:
        conn = connect(path, lock_timeout_ms=lock_timeout_ms, max_size_bytes=max_size_bytes)
        try:
            held = read_meta(conn, "device")
            if held is None:
                with transaction(conn):
                    write_meta(conn, "device", device)
            elif held != device:
                raise WrongDeviceError(f"{path} belongs to device {held!r}, not {device!r}")
            store = cls(conn, device)
        except BaseException:
            conn.close()
            raise
        with suppress(JournalUnavailableError):
            store.probe()  # lays the ballast in a new database; a full one makes room first
        return store

    @property
    def cursor(self) -> Cursor:
        """The newest record's seq and hash."""
        return self._cursor

    @property
    def acked(self) -> Cursor:
        return self._acked

    def record(
        self,
        time_ms: int,
        clock: ClockState,
        location: Location,
        body: Tap | Event,
        *,
        remember: bool = False,
        ticket: TicketUse | None = None,
    ) -> EncodedRecord:
        """Commit the next record (and, if `remember`, its history row); return it.

        In a full database, acknowledged records make way (see `probe`) and the record is
        tried once more: only a journal full of records the server does not hold yet
        takes the validator out of service.
        """
        try:
            return self._append(time_ms, clock, location, body, remember, ticket)
        except sqlite3.Error as error:
            if not (_full(error) and self._made_room()):
                raise JournalUnavailableError(f"cannot commit record: {error}") from None
        try:
            return self._append(time_ms, clock, location, body, remember, ticket)
        except sqlite3.Error as error:
            raise JournalUnavailableError(f"cannot commit record: {error}") from None

    def _append(
        self,
        time_ms: int,
        clock: ClockState,
        location: Location,
        body: Tap | Event,
        remember: bool,
        ticket: TicketUse | None,
    ) -> EncodedRecord:
        try:
            if self._cursor_stale:
                # A failed COMMIT may have reached the disk after all; trust only the file.
                self._cursor = journal.head(self._conn, self.device)
                self._cursor_stale = False
            cursor = self._cursor
            entry = journal.next_record(
                cursor,
                Record(self.device, cursor.seq + 1, cursor.head, time_ms, clock, location, body),
            )
            with transaction(self._conn):
                journal.insert(self._conn, entry)
                if remember and isinstance(body, Tap):
                    history.add(self._conn, body.token, _past(entry.record, body))
                if ticket is not None:
                    history.use_ticket(self._conn, ticket)
        except sqlite3.Error:
            self._cursor_stale = True
            raise
        self._cursor = cursor.after(entry)
        return entry

    def _made_room(self) -> bool:
        """Whether a full database has room again, from acknowledged records (`probe`)."""
        try:
            self.probe()
        except JournalUnavailableError:
            return False
        return True

    def probe(self) -> None:
        """Raise JournalUnavailableError unless a commit that needs new pages succeeds now.

        It also puts back the ballast (see `_maintain`), so that being in service always
        means the reserve for acknowledgements and pruning is there. If the database is
        full, every acknowledged record but the newest is pruned first, however recent, so
        an acknowledgement frees a full journal at the next probe, not after retention.
        """
        try:
            try:
                self._lay_ballast()
            except sqlite3.Error as error:
                if not _full(error):
                    raise
                self._make_room()
            if self._cursor_stale:
                self._cursor = journal.head(self._conn, self.device)
                self._cursor_stale = False
        except (sqlite3.Error, StoreError) as error:
            raise JournalUnavailableError(f"the journal is still not writable: {error}") from None

    def _make_room(self) -> None:
        """Prune every acknowledged record but the newest; if the database is still full,
        forget rider history but the last day's; then lay the ballast, or raise."""
        dropped = self._maintain(lambda: journal.prune(self._conn), "make room")
        if dropped:
            log.warning("journal full: pruned %d acknowledged records early", dropped)
        try:
            self._lay_ballast()
            return
        except sqlite3.Error as error:
            if not _full(error):
                raise
        shed = self._maintain(lambda: history.shed(self._conn, HISTORY_KEPT_MS), "make room")
        if shed:
            log.warning("journal full: forgot %d rider history rows older than a day", shed)
        self._lay_ballast()

    def _lay_ballast(self) -> None:
        with transaction(self._conn):
            self._conn.execute(
                "INSERT OR IGNORE INTO probe (id, filler) VALUES (1, zeroblob(?))",
                (BALLAST_BYTES,),
            )
            self._conn.execute(
                "INSERT INTO probe (id, filler) VALUES (2, zeroblob(?))", (2 * PAGE_SIZE,)
            )
            self._conn.execute("DELETE FROM probe WHERE id = 2")

    def _maintain(self, work: Callable[[], T], what: str) -> T:
        """Run `work` in a transaction; if the database is full, spend the ballast on it.

        A full journal must still take the acknowledgement and the pruning that will free
        it, or it would stay full for ever. A ballast row of BALLAST_BYTES is kept in the
        database for that: released here when needed, put back by `probe`.
        """
        try:
            with transaction(self._conn):
                return work()
        except sqlite3.Error as error:
            if not _full(error):
                raise StoreError(f"cannot {what}: {error}") from None
        try:
            with transaction(self._conn):
                self._conn.execute("DELETE FROM probe")
                return work()
        except sqlite3.Error as error:
            raise StoreError(f"cannot {what}: {error}") from None

    def recent(self, token: str, since_ms: int) -> tuple[PastTap, ...]:
        """The token's remembered taps since `since_ms`; on the tap path, so a failure to read
        is a journal failure like a failure to write."""
        try:
            return history.recent(self._conn, token, since_ms)
        except sqlite3.Error as error:
            raise JournalUnavailableError(f"cannot read rider history: {error}") from None

    def ticket_uses(self, ticket_id: bytes) -> int:
        try:
            return history.ticket_uses(self._conn, ticket_id)
        except sqlite3.Error as error:
            raise JournalUnavailableError(f"cannot read ticket uses: {error}") from None

    def pending(self, limit: int) -> list[EncodedRecord]:
        """Up to `limit` records the server has not acknowledged, oldest first."""
        return journal.pending(self._conn, self._acked.seq, limit)

    def acknowledge(self, cursor: Cursor, now_ms: int) -> None:
        """The server holds every record through `cursor`."""
        if cursor.seq <= self._acked.seq:
            return

        def work() -> None:
            journal.acknowledge(self._conn, cursor, now_ms)
            write_meta(self._conn, "last_sync_ms", str(now_ms))

        self._maintain(work, "store the acknowledgement")
        self._acked = cursor

    def resume_point(self, seq: int) -> bytes | None:
        """The hash of record `seq` (the genesis for 0), or None if the records after it
        can no longer all be sent: what a rewind to a server's cursor at `seq` needs."""
        try:
            return journal.resume_point(self._conn, self.device, seq)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read record {seq}: {error}") from None

    def unacknowledge(self, cursor: Cursor) -> None:
        """The server lost what it acknowledged after `cursor` (restored from a backup):
        those records count as unacked again and will be sent again."""
        if cursor.seq >= self._acked.seq:
            return
        self._maintain(lambda: journal.unacknowledge(self._conn, cursor), "rewind the acks")
        self._acked = cursor

    def prune(self, now_ms: int, *, retention_ms: int, history_ms: int) -> int:
        """Drop acknowledged records past retention and old history; the records dropped."""

        def work() -> int:
            dropped = journal.prune(self._conn, now_ms - retention_ms)
            history.prune(self._conn, now_ms - history_ms, now_ms)
            return dropped

        return self._maintain(work, "prune")

    def apply_package(self, package: Package, trusted: Iterable[VerifyKey], now_ms: int) -> Caches:
        """Apply a signed package atomically; see `caches.apply_package`."""
        return self.commit_package(self.prepare_package(package, trusted, now_ms), now_ms)

    def prepare_package(
        self, package: Package, trusted: Iterable[VerifyKey], now_ms: int
    ) -> PreparedPackage:
        """Verify and apply a package in memory (see `caches.prepare_package`).

        The one method that may run off the store thread: it reads the caches, an
        immutable value, and no connection. A large stoplist is thus merged without
        holding up the taps; only `commit_package` writes, on the store thread.
        """
        return caches.prepare_package(self.caches, package, trusted, now_ms)

    def commit_package(self, prepared: PreparedPackage, now_ms: int) -> Caches:
        """Store a prepared package atomically, if the caches are still those it was
        prepared over (else CacheError: prepare it again)."""
        if prepared.base is not self.caches:
            raise CacheError(f"the caches changed while {prepared.package.kind} was prepared")
        self.caches = caches.store_package(self._conn, prepared, now_ms)
        return self.caches

    def confirm_stoplist(self, version: int, now_ms: int) -> None:
        """The server answered that stoplist `version` is still its latest (see
        `caches.confirm_stoplist`)."""
        self.caches = caches.confirm_stoplist(self._conn, self.caches, version, now_ms)

    def verify(self) -> Cursor:
        """Check the whole kept journal against the chain; return its head."""
        return journal.verify(self._conn, self.device)

    def figures(self) -> journal.Figures:
        """Journal depth, last sync, clock offset and size, for status and heartbeats."""
        try:
            return journal.figures(self._conn, self.device)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read the journal's figures: {error}") from None

    def clock_offset_ms(self) -> int | None:
        """The server's clock minus ours as last measured by a sync, if ever (and plausible)."""
        return self.figures().clock_offset_ms

    def set_clock_offset_ms(self, offset_ms: int) -> None:
        if abs(offset_ms) > journal.MAX_CLOCK_OFFSET_MS:
            raise StoreError(f"a clock offset of {offset_ms} ms cannot be right; not kept")
        try:
            with transaction(self._conn):
                write_meta(self._conn, "clock_offset_ms", str(offset_ms))
        except sqlite3.Error as error:
            raise StoreError(f"cannot store the clock offset: {error}") from None

    def close(self) -> None:
        self._conn.close()


def _full(error: sqlite3.Error) -> bool:
    """The disk, or the state.max_size_mb cap, is full."""
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def _past(record: Record, tap: Tap) -> PastTap:
    return PastTap(
        seq=record.seq,
        time_ms=record.time_ms,
        tap_type=tap.tap_type,
        outcome=tap.outcome,
        reason=tap.reason,
        fare=tap.fare,
        product=tap.product,
        category=tap.category,
        location=record.location,
    )
