"""Opening the state database: WAL, synchronous=FULL, a bounded lock wait, migrations.

Every connection is used by one thread only (the store thread); `check_same_thread` is
off solely so that the thread that opens it at start-up may hand it over.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from farebox.agent.errors import StoreError
from farebox.agent.store.schema import migrate

PAGE_SIZE = 4096
RESERVE_BYTES = 16 * 2**20
"""What the automatic cap leaves free on the state's file system at least, unless that is
more than half of the free space (`automatic_cap`)."""


def connect(
    path: Path, *, lock_timeout_ms: int, max_size_bytes: int | None = None
) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the state database at `path`."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open the state database {path}: {error}") from None
    try:
        configure(conn, lock_timeout_ms=lock_timeout_ms)
        migrate(conn, 0)  # before the cap: an upgrade on a full card still starts
        if max_size_bytes is None:
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            max_size_bytes = automatic_cap(pages * PAGE_SIZE, shutil.disk_usage(path.parent).free)
        # A cap on the file keeps the journal from filling the card the OS lives on; when
        # it is reached, writes fail like a full disk and the validator goes out of service.
        conn.execute(f"PRAGMA max_page_count = {max(1, int(max_size_bytes) // PAGE_SIZE)}")
    except (sqlite3.Error, OSError) as error:
        conn.close()
        raise StoreError(f"cannot prepare the state database {path}: {error}") from None
    return conn


def automatic_cap(size: int, free: int) -> int:
    """The cap of a database of `size` bytes with `free` bytes free beside it, when none
    is configured: all but a reserve of the free space, a tenth of it, RESERVE_BYTES at
    least but half of it at most.

    A database that fills its file system cannot come back: the acknowledgement and the
    pruning that would free a full journal need new write-ahead-log frames too. Capped,
    the database is full while the file system is not, and they have the reserve; on a
    nearly full card, an offline bus still has half of what is left to record taps in.
    """
    reserve = min(max(RESERVE_BYTES, free // 10), free // 2)
    return size + free - reserve


def configure(conn: sqlite3.Connection, *, lock_timeout_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(lock_timeout_ms)}")
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise StoreError(f"the state database cannot use WAL (journal_mode={mode})")
    # FULL: a commit is on stable storage before it returns, so a tap whose feedback the
    # rider saw survives a power cut (NORMAL may lose the last commits in WAL mode).
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def read_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def write_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Set `key` inside the caller's transaction."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT; on any error roll back (if SQLite has not) and re-raise."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (SQLITE_FULL, SQLITE_IOERR) may or may not have rolled back.
        # If the rollback fails too, the original error is the one worth reporting.
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
