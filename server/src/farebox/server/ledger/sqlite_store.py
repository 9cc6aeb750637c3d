"""The SQLite store: one file, zero set-up, the embedded default.

sqlite3 blocks, so the connection lives on a thread of its own, which runs an event loop
of its own: a transaction runs there from BEGIN to COMMIT, its statements executed in
place, and callers await it from their loop (were each statement handed over from the
server's loop, the store would wait between statements while that loop decoded uploads).
SQLite has one writer anyway, so transactions queue for the connection, and those that
queued while one was running commit together (group commit): each runs in a savepoint of
its own, a failing one is rolled back to its savepoint alone, and every caller hears back
only after the shared COMMIT. A commit costs about as much for one batch as for several
(its cost is the pages it writes, and batches share the hot ones), so under load this
multiplies throughput. `BEGIN IMMEDIATE` takes the write lock up front so that a
transaction never fails half-way on a busy database. The file is in WAL mode with
synchronous=FULL: a posting that was acknowledged survives a power cut.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from farebox.server.errors import MigrationError, StoreError, UnknownAccountError
from farebox.server.ledger.migrations import migrations
from farebox.server.ledger.reads import DAY_CHANGE, RIDER_OF_CHANGE
from farebox.server.ledger.store import (
    ACCOUNT_COLUMNS,
    MISMATCH_COLUMNS,
    MISMATCH_CONDITION,
    TRANSFER_COLUMNS,
    Row,
    Session,
)

T = TypeVar("T")
PREFIX = "sqlite:///"
GROUP = 32
"""At most this many waiting transactions share one commit."""

_INSERT_TRANSFER = (
    f"INSERT INTO transfers ({', '.join(TRANSFER_COLUMNS)}) "  # noqa: S608 (fixed names)
    f"VALUES ({', '.join('?' for _ in TRANSFER_COLUMNS)}) ON CONFLICT DO NOTHING"
)
_OPEN_ACCOUNT = (
    f"INSERT INTO accounts ({', '.join(ACCOUNT_COLUMNS)}) "  # noqa: S608 (fixed names)
    f"VALUES ({', '.join('?' for _ in ACCOUNT_COLUMNS)}) ON CONFLICT DO NOTHING"
)

# The summed moves of the transfers above id ?1 (those one insert made), applied to their
# accounts in one statement: posted amounts, and the holds that pending transfers take
# and their posts and voids release (found by key through the unique index).
APPLY_BALANCES = """
UPDATE accounts
SET posted = accounts.posted + m.posted,
    pending_debits = accounts.pending_debits + m.held_debit,
    pending_credits = accounts.pending_credits + m.held_credit
FROM (
    SELECT account, currency, sum(posted) AS posted, sum(held_debit) AS held_debit,
           sum(held_credit) AS held_credit
    FROM (
        SELECT n.debit AS account, n.currency,
               CASE WHEN n.phase IN ('single', 'post') THEN -n.amount ELSE 0 END AS posted,
               CASE n.phase WHEN 'pending' THEN n.amount WHEN 'single' THEN 0
                   ELSE -(SELECT h.amount FROM transfers h WHERE h.key = n.origin) END
                   AS held_debit,
               0 AS held_credit
        FROM transfers n WHERE n.id > ?1
        UNION ALL
        SELECT n.credit, n.currency,
               CASE WHEN n.phase IN ('single', 'post') THEN n.amount ELSE 0 END, 0,
               CASE n.phase WHEN 'pending' THEN n.amount WHEN 'single' THEN 0
                   ELSE -(SELECT h.amount FROM transfers h WHERE h.key = n.origin) END
        FROM transfers n WHERE n.id > ?1
    )
    GROUP BY account, currency
) AS m
WHERE accounts.id = m.account AND accounts.currency = m.currency
"""
# A rider's fare or fare reversal among them into a closed fare day changes what that
# day's settlement saw: the day is marked again (days still open are marked when they
# close, see writes.close_fare_days).
MARK_FARE_DAYS = f"""
INSERT INTO fare_days (account, fare_day)
SELECT {RIDER_OF_CHANGE}, fare_day FROM transfers
WHERE id > ?1 AND fare_day <= (SELECT closed_through FROM fare_day_close) AND {DAY_CHANGE}
GROUP BY 1, 2
ON CONFLICT (account, fare_day) DO UPDATE SET dirty = 1 WHERE NOT fare_days.dirty
"""  # noqa: S608 (fixed text)

_MISMATCHES = (
    f"{MISMATCH_COLUMNS} FROM accounts"  # noqa: S608 (fixed text)
    f" WHERE id IN (SELECT value FROM json_each($1)) AND {MISMATCH_CONDITION}"
)


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """PostgreSQL's `$1` placeholders as SQLite's equivalent `?1`."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA busy_timeout = 10000")
    connection.execute("PRAGMA cache_size = -65536")
    connection.execute("PRAGMA temp_store = MEMORY")
    return connection


class _SqliteSession:
    """Statements of one transaction, run at once: the session lives on the store's thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return self._connection.execute(_numbered(sql), args).fetchall()

    async def execute(self, sql: str, *args: object) -> None:
        self._connection.execute(_numbered(sql), args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            self._connection.executemany(_numbered(sql), rows)

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        names, slots = ", ".join(columns), ", ".join("?" for _ in columns)
        await self.executemany(f"INSERT INTO {table} ({names}) VALUES ({slots})", rows)  # noqa: S608 (names fixed in code)

    async def open_accounts(self, rows: Sequence[Sequence[object]]) -> None:
        await self.executemany(_OPEN_ACCOUNT, rows)

    async def insert_transfers(self, rows: Sequence[Sequence[object]]) -> list[Row]:
        connection = self._connection
        # The transaction holds SQLite's only write lock, so every id above the maximum
        # seen first belongs to a row inserted here.
        (before,) = connection.execute("SELECT coalesce(max(id), 0) FROM transfers").fetchone()
        try:
            connection.executemany(_INSERT_TRANSFER, rows)
        except sqlite3.IntegrityError as error:
            if "FOREIGN KEY" in str(error):
                raise UnknownAccountError("a transfer names an unknown account") from error
            raise
        connection.execute(APPLY_BALANCES, (before,))
        connection.execute(MARK_FARE_DAYS, (before,))
        found = connection.execute(
            "SELECT key, id, posted_ms FROM transfers WHERE id > ?", (before,)
        )
        return found.fetchall()

    async def limit_mismatches(self, account_ids: Sequence[str]) -> list[Row]:
        return await self.fetch(_MISMATCHES, json.dumps(account_ids))

    async def lock_stoplist_head(self) -> Row:
        (head,) = await self.fetch("SELECT version, checksum FROM stoplist_head")
        return head


_Job = tuple[Callable[[Session], Awaitable[Any]], "asyncio.Future[Any]"]


def _undo(connection: sqlite3.Connection, *, alone: bool) -> None:
    """Undo a failed job: its whole transaction if it is alone, else its savepoint."""
    if alone:
        connection.execute("ROLLBACK")
    else:
        connection.execute("ROLLBACK TO job")
        connection.execute("RELEASE job")


def _answer(outcomes: Sequence[tuple[_Job, object]], *, failed: bool) -> None:
    """Hand each waiting caller its job's result, or `failed`, the error it gets."""
    for (_, future), outcome in outcomes:
        if future.done():
            continue
        if not failed:
            future.set_result(outcome)
        elif isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.cancel()


class SqliteStore:
    """A ledger in one SQLite file, on a thread of its own."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self._url = url
        self._loop = loop
        self._thread = thread
        self._connection: sqlite3.Connection | None = None
        # Used on the store's thread only. The lock gives the writer (or a migration) the
        # connection to itself.
        self._lock = asyncio.Lock()
        self._waiting: collections.deque[_Job] = collections.deque()
        self._writer: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self._url

    @classmethod
    async def open(cls, url: str) -> SqliteStore:
        path = url.removeprefix(PREFIX)
        if not path:
            raise StoreError("sqlite:/// needs a file path, e.g. sqlite:///var/lib/farebox.db")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="farebox-sqlite", daemon=True)
        thread.start()
        store = cls(url, loop, thread)
        try:
            store._connection = await store._in_store(_returning(lambda: _connect(path)))
        except sqlite3.Error as error:
            await store._stop()
            raise StoreError(f"cannot open {url}: {error}") from error
        return store

    async def _in_store(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the store's thread and its event loop; await it from this one."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None or self._loop.is_closed():
            raise StoreError("the store is closed")
        return self._connection

    async def call(self, action: Callable[[sqlite3.Connection], T]) -> T:
        """Run `action` with the connection on the store's thread, between transactions."""
        connection = self._open_connection()
        return await self._in_store(_returning(lambda: action(connection)))

    async def migrate(self) -> int:
        connection = self._open_connection()

        def apply() -> int:
            connection.execute("CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER)")
            row = connection.execute("SELECT max(version) FROM ledger_schema").fetchone()
            current = row[0] or 0
            steps = migrations("sqlite")
            if current > steps[-1].version:
                raise MigrationError(f"schema version {current} is newer than this code")
            for step in steps:
                if step.version > current:
                    # executescript commits first; the script is its own transaction.
                    connection.executescript(
                        f"BEGIN IMMEDIATE;\n{step.sql}\n"
                        f"INSERT INTO ledger_schema VALUES ({step.version});\nCOMMIT;"
                    )
            return steps[-1].version

        async def locked() -> int:
            async with self._lock:
                try:
                    return apply()
                except sqlite3.Error as error:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise MigrationError(f"migration failed: {error}") from error

        return await self._in_store(locked())

    async def run(self, work: Callable[[Session], Awaitable[T]]) -> T:
        connection = self._open_connection()
        # A caller that stops waiting cancels its job: a job not started is skipped, a job
        # already running finishes with its group and its result is dropped.
        return await self._in_store(self._queue(connection, work))

    async def _queue(
        self, connection: sqlite3.Connection, work: Callable[[Session], Awaitable[Any]]
    ) -> Any:
        job: _Job = (work, asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(connection))
        return await job[1]

    async def _write(self, connection: sqlite3.Connection) -> None:
        async with self._lock:
            while self._waiting:
                group = [self._waiting.popleft() for _ in range(min(len(self._waiting), GROUP))]
                jobs = [job for job in group if not job[1].cancelled()]
                try:
                    await self._commit(connection, jobs)
                except BaseException as error:
                    # BEGIN or COMMIT failed, or the writer is cancelled: nothing of the
                    # group is committed, and its callers are told so.
                    with contextlib.suppress(Exception):
                        if connection.in_transaction:
                            connection.execute("ROLLBACK")
                    _answer([(job, error) for job in jobs], failed=True)
                    if not isinstance(error, Exception):
                        raise
                # Let the jobs queued meanwhile join the next group.
                await asyncio.sleep(0)

    async def _commit(self, connection: sqlite3.Connection, jobs: list[_Job]) -> None:
        """Run `jobs` in one transaction, each in a savepoint of its own, and commit once."""
        session = _SqliteSession(connection)
        alone = len(jobs) == 1
        done: list[tuple[_Job, object]] = []
        connection.execute("BEGIN IMMEDIATE")
        for index, job in enumerate(jobs):
            if not alone:
                connection.execute("SAVEPOINT job")
            try:
                result = await job[0](session)
            except Exception as error:  # noqa: BLE001 - handed to the job's caller
                if not connection.in_transaction:
                    # SQLite rolled the whole transaction back (a full disk, an I/O error):
                    # the jobs before this one lost their work too and go round again.
                    self._waiting.extendleft(reversed([*(j for j, _ in done), *jobs[index + 1 :]]))
                    _answer([(job, error)], failed=True)
                    return
                _undo(connection, alone=alone)
                _answer([(job, error)], failed=True)
                continue
            if not alone:
                connection.execute("RELEASE job")
            done.append((job, result))
        connection.execute("COMMIT")
        _answer(done, failed=False)

    async def close(self) -> None:
        if self._loop.is_closed():
            return
        connection, self._connection = self._connection, None

        async def finish() -> None:
            if self._writer is not None:
                await self._writer
            if connection is not None:
                connection.close()

        await self._in_store(finish())
        await self._stop()

    async def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()


async def _returning(action: Callable[[], T]) -> T:
    """`action()` as a coroutine, to be run on the store's event loop."""
    return action()
