"""The SQLite store: one file, zero set-up, the embedded default.

sqlite3 blocks, so the connection lives on one dedicated thread and every statement is
handed to it; the event loop only awaits. SQLite has one writer anyway, so transactions
queue for the connection, and those that queued while one was running commit together
(group commit): each runs in a savepoint of its own, a failing one is rolled back to its
savepoint alone, and every caller hears back only after the shared COMMIT. A commit costs
about as much for one batch as for several (its cost is the pages it writes, and batches
share the hot ones), so under load this multiplies throughput. `BEGIN IMMEDIATE` takes
the write lock up front so that a transaction never fails half-way on a busy database.
The file is in WAL mode with synchronous=FULL: a posting that was acknowledged survives
a power cut.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from farebox.server.errors import MigrationError, StoreError, UnknownAccountError
from farebox.server.ledger.migrations import migrations
from farebox.server.ledger.store import (
    ACCOUNT_COLUMNS,
    MISMATCH_COLUMNS,
    MISMATCH_CONDITION,
    TRANSFER_COLUMNS,
    Row,
    Session,
)
from farebox.server.ledger.writes import marking_fare_days

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
MARK_FARE_DAYS = marking_fare_days(
    "id > ?1 AND fare_day <= (SELECT closed_through FROM fare_day_close)"
)

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
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return await self._store.call(lambda c: c.execute(_numbered(sql), args).fetchall())

    async def execute(self, sql: str, *args: object) -> None:
        await self._store.call(lambda c: c.execute(_numbered(sql), args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            await self._store.call(lambda c: c.executemany(_numbered(sql), rows))

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        names, slots = ", ".join(columns), ", ".join("?" for _ in columns)
        await self.executemany(f"INSERT INTO {table} ({names}) VALUES ({slots})", rows)  # noqa: S608 (names fixed in code)

    async def open_accounts(self, rows: Sequence[Sequence[object]]) -> None:
        await self.executemany(_OPEN_ACCOUNT, rows)

    async def insert_transfers(self, rows: Sequence[Sequence[object]]) -> list[Row]:
        def insert(connection: sqlite3.Connection) -> list[Row]:
            # The transaction holds SQLite's only write lock, so every id above the
            # maximum seen first belongs to a row inserted here.
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

        return await self._store.call(insert)

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
    """A ledger in one SQLite file, driven from a dedicated thread."""

    def __init__(self, url: str, executor: ThreadPoolExecutor) -> None:
        self._url = url
        self._executor = executor
        self._connection: sqlite3.Connection | None = None
        # The lock gives the writer (or a migration) the connection to itself.
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
        store = cls(url, ThreadPoolExecutor(max_workers=1, thread_name_prefix="farebox-sqlite"))
        try:
            store._connection = await store._on_thread(lambda: _connect(path))
        except sqlite3.Error as error:
            store._executor.shutdown(wait=False)
            raise StoreError(f"cannot open {url}: {error}") from error
        return store

    async def _on_thread(self, action: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, action)

    async def call(self, action: Callable[[sqlite3.Connection], T]) -> T:
        """Run `action` with the connection on the store's thread."""
        connection = self._connection
        if connection is None:
            raise StoreError("the store is closed")
        return await self._on_thread(lambda: action(connection))

    async def migrate(self) -> int:
        def apply(connection: sqlite3.Connection) -> int:
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

        async with self._lock:
            try:
                return await self.call(apply)
            except sqlite3.Error as error:
                await self.call(lambda c: c.in_transaction and c.execute("ROLLBACK"))
                raise MigrationError(f"migration failed: {error}") from error

    async def run(self, work: Callable[[Session], Awaitable[T]]) -> T:
        job: _Job = (work, asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        # A caller that stops waiting cancels its future: a job not started is skipped, a
        # job already running finishes with its group and its result is dropped.
        return await job[1]  # type: ignore[no-any-return]  # the future of `work`'s result

    async def _write(self) -> None:
        async with self._lock:
            while self._waiting:
                group = [self._waiting.popleft() for _ in range(min(len(self._waiting), GROUP))]
                jobs = [job for job in group if not job[1].cancelled()]
                try:
                    await self._commit(jobs)
                except BaseException as error:
                    # BEGIN or COMMIT failed, or the writer is cancelled (the loop is
                    # shutting down): nothing of the group is committed, and its callers
                    # are told so.
                    with contextlib.suppress(Exception):
                        await self.call(lambda c: c.in_transaction and c.execute("ROLLBACK"))
                    _answer([(job, error) for job in jobs], failed=True)
                    if not isinstance(error, Exception):
                        raise

    async def _commit(self, jobs: list[_Job]) -> None:
        """Run `jobs` in one transaction, each in a savepoint of its own, and commit once."""
        session = _SqliteSession(self)
        alone = len(jobs) == 1
        done: list[tuple[_Job, object]] = []
        await self.call(lambda c: c.execute("BEGIN IMMEDIATE"))
        for index, job in enumerate(jobs):
            if not alone:
                await self.call(lambda c: c.execute("SAVEPOINT job"))
            try:
                result = await job[0](session)
            except Exception as error:  # noqa: BLE001 - handed to the job's caller
                if not await self.call(lambda c: c.in_transaction):
                    # SQLite rolled the whole transaction back (a full disk, an I/O error):
                    # the jobs before this one lost their work too and go round again.
                    self._waiting.extendleft(reversed([*(j for j, _ in done), *jobs[index + 1 :]]))
                    _answer([(job, error)], failed=True)
                    return
                await self.call(lambda c: _undo(c, alone=alone))
                _answer([(job, error)], failed=True)
                continue
            if not alone:
                await self.call(lambda c: c.execute("RELEASE job"))
            done.append((job, result))
        await self.call(lambda c: c.execute("COMMIT"))
        _answer(done, failed=False)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await self._on_thread(connection.close)
        self._executor.shutdown(wait=True)
