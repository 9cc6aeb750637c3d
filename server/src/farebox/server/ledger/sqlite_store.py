"""The SQLite store: one file, zero set-up, the embedded default.

sqlite3 blocks, so the connection lives on one dedicated thread, and whole transactions
run there, jobs and all: a job awaits only its session, whose statements run at once on
that thread, so a transaction needs no round trip to the event loop between statements
(a round trip waited for whatever Python the loop was running). SQLite has one writer
anyway, so transactions queue for the connection, and those that queued while one was
running commit together (group commit): each runs in a savepoint of its own, a failing
one is rolled back to its savepoint alone, and every caller hears back only after the
shared COMMIT. A commit costs about as much for one batch as for several (its cost is the
pages it writes, and batches share the hot ones), so under load this multiplies
throughput; for the same reason, after a shared commit the next group waits a moment
(GATHER_S) for the callers still making their work. `BEGIN IMMEDIATE` takes the write
lock up front so that a transaction never fails half-way on a busy database. Stores
sharing the file, in one process or several, take turns to write through an OS lock on a
file beside it (`<file>-writer`): a waiting writer wakes the moment the lock is let go,
where SQLite's busy handler would sleep between polls. The file is in WAL mode with
synchronous=FULL: a posting that was acknowledged survives a power cut.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import functools
import itertools
import json
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from farebox.server.errors import (
    MigrationError,
    OutOfRangeError,
    StoreError,
    StoreFullError,
    UnknownAccountError,
)
from farebox.server.ledger.migrations import (
    SCHEMA_VERSION,
    Migration,
    migrations,
    refuse_newer,
    require_current,
)
from farebox.server.ledger.store import (
    ACCOUNT_COLUMNS,
    AMONG,
    TRANSFER_COLUMNS,
    Row,
    Session,
)
from farebox.server.ledger.writes import marking_fare_days

T = TypeVar("T")
P = ParamSpec("P")
PREFIX = "sqlite:///"
MEMORY = ":memory:"
TURNS = "-writer"
"""The suffix of the file beside the database through which writers take turns."""
BUSY_S = 10
"""How long a statement waits for another connection's lock before it fails."""
GROUP = 32
"""At most this many waiting transactions share one commit."""
GATHER_S = 0.001
"""How long the next group waits for company when the last one had it and fewer wait."""
SQLITE_CONSTRAINT_DATATYPE = 3091  # not in Python 3.11's sqlite3

CHUNK = 256
"""At most this many rows go into one INSERT statement (fewer if their parameters would
pass SQLite's limit, 32,766 in its default build)."""

# The summed moves of the transfers above id ?1 (those one insert made), applied to their
# accounts in one statement: posted amounts, and the holds that pending transfers take
# and their posts and voids release (found by key through the unique index). Each
# transfer's two amounts are worked out once, then taken from its debit and to its credit.
APPLY_BALANCES = """
WITH moved (debit, credit, currency, posted, held) AS (
    SELECT n.debit, n.credit, n.currency,
           CASE WHEN n.phase IN ('single', 'post') THEN n.amount ELSE 0 END,
           CASE n.phase WHEN 'pending' THEN n.amount WHEN 'single' THEN 0
               ELSE -(SELECT h.amount FROM transfers h WHERE h.key = n.origin) END
    FROM transfers n WHERE n.id > ?1
)
UPDATE accounts
SET posted = accounts.posted + m.posted,
    pending_debits = accounts.pending_debits + m.held_debit,
    pending_credits = accounts.pending_credits + m.held_credit
FROM (
    SELECT account, currency, sum(posted) AS posted, sum(held_debit) AS held_debit,
           sum(held_credit) AS held_credit
    FROM (
        SELECT debit AS account, currency, -posted AS posted, held AS held_debit,
               0 AS held_credit
        FROM moved
        UNION ALL
        SELECT credit, currency, posted, 0, held FROM moved
    )
    GROUP BY account, currency
) AS m
WHERE accounts.id = m.account AND accounts.currency = m.currency
"""
# A rider's fare or fare reversal among them into a closed fare day changes what that
# day's settlement saw: the day is marked again (days still open are marked when they
# close, see writes.close_fare_days). The unary + keeps SQLite off the fare_day index:
# through it, every posting would read the whole history of the closed days.
MARK_FARE_DAYS = marking_fare_days(
    "id > ?1 AND +fare_day <= (SELECT closed_through FROM fare_day_close)"
)

# The keys of `Session.fetch_among`, bound as one JSON array, as a set.
_IN_JSON = "IN (SELECT value FROM json_each($1))"
_SCHEMA_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_schema'"


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """PostgreSQL's `$1` placeholders as SQLite's equivalent `?1`."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


@functools.lru_cache(maxsize=64)
def _inserting(table: str, columns: tuple[str, ...], count: int, *, skip_conflicts: bool) -> str:
    """One INSERT of `count` rows of `columns` into `table`."""
    row = f"({', '.join('?' for _ in columns)})"
    tail = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * count)}{tail}"  # noqa: S608 (names fixed in code)


def _insert(
    connection: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[object]],
    *,
    skip_conflicts: bool = False,
) -> None:
    """Insert `rows` with a few many-row statements rather than one statement per row.

    sqlite3 lets go of the GIL around every statement step and must take it back after
    each; while the event loop's thread runs Python, each take waits up to the switch
    interval (5 ms). One statement per row made a 1000-row insert wait for the GIL a
    thousand times; chunks of 256, 128, ... rows wait a few times, and their statements
    stay in the connection's cache (one per power of two).
    """
    most = min(CHUNK, connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(columns))
    done = 0
    while done < len(rows):
        count = 1 << min(most, len(rows) - done).bit_length() - 1
        chunk = rows[done : done + count]
        sql = _inserting(table, columns, count, skip_conflicts=skip_conflicts)
        connection.execute(sql, list(itertools.chain.from_iterable(chunk)))
        done += count


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_S * 1000}")
    _use_wal(connection)
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA cache_size = -65536")
    connection.execute("PRAGMA temp_store = MEMORY")
    return connection


def _use_wal(connection: sqlite3.Connection) -> None:
    """Put the database in WAL mode, which the file keeps.

    Of stores opening a new file at the same moment, one converts it, and while it holds
    the file's write lock SQLite refuses the others' conversion at once (the busy timeout
    does not cover it): they try again until the file is converted, for up to BUSY_S.
    """
    deadline = time.monotonic() + BUSY_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.005)


def _open_turns(path: str) -> int | None:
    """The file through which the writers of the database at `path` take turns, opened
    (and made if missing); None for an in-memory database, which has one connection.

    Read-only is enough for the lock, so an operator's command run as another user with
    read access opens it too.
    """
    if path == MEMORY:
        return None
    return os.open(path + TURNS, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)


@contextlib.contextmanager
def _turn(turns: int | None) -> Iterator[None]:
    """Hold the writers' turn on `turns` (see `_open_turns`) for one transaction."""
    if turns is None:
        yield
        return
    try:
        fcntl.flock(turns, fcntl.LOCK_EX)
    except OSError as error:
        raise StoreError(f"cannot take the writers' turn: {error}") from error
    try:
        yield
    finally:
        fcntl.flock(turns, fcntl.LOCK_UN)


def _apply_step(connection: sqlite3.Connection, step: Migration) -> None:
    """Apply `step` in a transaction of its own, unless another process just did.

    The step records its version first, and a version is recorded once (the unique index
    ledger_schema_once): of two processes that found the schema at the same version, the
    second stops at that insert. Foreign keys are checked before the step commits.
    """
    try:
        # executescript commits first; the script is its own transaction, left open here.
        connection.executescript(
            f"BEGIN IMMEDIATE;\nINSERT INTO ledger_schema VALUES ({step.version});\n{step.sql}"
        )
    except sqlite3.IntegrityError as error:
        if "ledger_schema.version" not in str(error):
            raise
        connection.execute("ROLLBACK")
        return
    broken = connection.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise MigrationError(f"migration {step.version} breaks foreign keys: {broken[:5]}")
    connection.execute("COMMIT")


class _SqliteSession:
    """Statements of the transaction the store's thread has open. Its coroutines never
    suspend: each runs its statement there and then (see `_to_end`)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return self._connection.execute(_numbered(sql), args).fetchall()

    async def execute(self, sql: str, *args: object) -> None:
        self._connection.execute(_numbered(sql), args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._connection.executemany(_numbered(sql), rows)

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        _insert(self._connection, table, tuple(columns), rows)

    async def open_accounts(self, rows: Sequence[Sequence[object]]) -> None:
        _insert(self._connection, "accounts", ACCOUNT_COLUMNS, rows, skip_conflicts=True)

    async def insert_transfers(self, rows: Sequence[Sequence[object]]) -> list[Row]:
        connection = self._connection
        # The transaction holds SQLite's only write lock, so every id above the maximum
        # seen first belongs to a row inserted here.
        (before,) = connection.execute("SELECT coalesce(max(id), 0) FROM transfers").fetchone()
        try:
            _insert(connection, "transfers", TRANSFER_COLUMNS, rows, skip_conflicts=True)
        except sqlite3.IntegrityError as error:
            if "FOREIGN KEY" in str(error):
                raise UnknownAccountError(
                    "a transfer names an unknown account, or one of another currency"
                ) from error
            raise
        connection.execute(APPLY_BALANCES, (before,))
        connection.execute(MARK_FARE_DAYS, (before,))
        found = connection.execute(
            "SELECT key, id, posted_ms FROM transfers WHERE id > ?", (before,)
        )
        return found.fetchall()

    async def fetch_among(self, sql: str, keys: Sequence[str]) -> list[Row]:
        return await self.fetch(sql.replace(AMONG, _IN_JSON), json.dumps(list(keys)))

    async def lock_stoplist_head(self) -> Row:
        (head,) = await self.fetch("SELECT version, checksum FROM stoplist_head")
        return head


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """SQLite's errors that are the store's refusals, as ServerErrors."""
    try:
        yield
    except sqlite3.OperationalError as error:
        if error.sqlite_errorcode == sqlite3.SQLITE_FULL:
            raise StoreFullError(f"the SQLite store is full: {error}") from error
        if str(error) == "integer overflow":  # sum() past 64 bits
            raise OutOfRangeError from error
        raise
    except sqlite3.IntegrityError as error:
        # A sum past 64 bits is made a REAL, which a STRICT table's integer refuses.
        if error.sqlite_errorcode == SQLITE_CONSTRAINT_DATATYPE:
            raise OutOfRangeError from error
        raise
    except OverflowError as error:  # an integer past 64 bits, refused as it was bound
        raise OutOfRangeError from error


def _to_end(work: Awaitable[T]) -> T:
    """Run a job's coroutine to its end at once, on the calling thread.

    A job awaits only its session, whose coroutines never suspend, so it ends on the first
    step; one that waits for anything else is a programming error and is refused.
    """
    steps = work.__await__()
    try:
        steps.send(None)
    except StopIteration as end:
        return end.value  # type: ignore[no-any-return]  # the coroutine's own result
    steps.close()
    raise StoreError("a job on the SQLite store awaited something other than its session")


_Call = tuple[Callable[..., Awaitable[Any]], tuple[Any, ...], dict[str, Any]]
"""A job's work and its arguments but the session."""
_Job = tuple[_Call, "asyncio.Future[Any]"]
_Outcome = tuple[_Job, object, bool]
"""A job, and its result, or the error it failed with (True)."""


def _commit(
    connection: sqlite3.Connection, turns: int | None, jobs: Sequence[_Job]
) -> tuple[list[_Outcome], list[_Job]]:
    """Run `jobs` in one transaction, each in a savepoint of its own, and commit once.

    Runs on the store's thread, jobs and all, so that a group needs no round trip to the
    event loop between its statements, in the writers' turn taken on `turns`. Returns each
    job's outcome, and the jobs to run again: those whose work was lost with a transaction
    that SQLite rolled back as a whole.
    """
    with _turn(turns):
        connection.execute("BEGIN IMMEDIATE")
        try:
            return _run_jobs(connection, jobs)
        finally:
            if connection.in_transaction:  # COMMIT was not reached, or failed
                connection.execute("ROLLBACK")


def _run_jobs(
    connection: sqlite3.Connection, jobs: Sequence[_Job]
) -> tuple[list[_Outcome], list[_Job]]:
    session = _SqliteSession(connection)
    alone = len(jobs) == 1
    outcomes: list[_Outcome] = []
    for index, job in enumerate(jobs):
        if not alone:
            connection.execute("SAVEPOINT job")
        try:
            work, args, kwargs = job[0]
            result = _to_end(work(session, *args, **kwargs))
        except Exception as error:  # noqa: BLE001 - handed to the job's caller
            if not connection.in_transaction:
                # SQLite rolled the whole transaction back (a full disk, an I/O error): the
                # jobs before this one lost their work too and go round again.
                failures = [outcome for outcome in outcomes if outcome[2]]
                done = [done_job for done_job, _, failed in outcomes if not failed]
                return [*failures, (job, error, True)], [*done, *jobs[index + 1 :]]
            if alone:
                connection.execute("ROLLBACK")
            else:
                connection.execute("ROLLBACK TO job")
                connection.execute("RELEASE job")
            outcomes.append((job, error, True))
            continue
        if not alone:
            connection.execute("RELEASE job")
        outcomes.append((job, result, False))
    if connection.in_transaction:  # else the only job failed and was rolled back
        connection.execute("COMMIT")
    return outcomes, []


def _answer(outcomes: Sequence[_Outcome]) -> None:
    """Hand each waiting caller its job's result or error (a non-error ends its wait)."""
    for (_, future), outcome, failed in outcomes:
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
        self._reading = ThreadPoolExecutor(max_workers=1, thread_name_prefix="farebox-read")
        self._reader: sqlite3.Connection | None = None
        self._closed = False
        self._turns: int | None = None
        self._waiting: collections.deque[_Job] = collections.deque()
        self._group: asyncio.Future[tuple[list[_Outcome], list[_Job]]] | None = None
        self._gathering: asyncio.TimerHandle | None = None

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
            store._turns = _open_turns(path)
        except (sqlite3.Error, OSError) as error:
            await store.close()
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
            connection.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS ledger_schema_once ON ledger_schema (version)"
            )
            row = connection.execute(SCHEMA_VERSION).fetchone()
            current = row[0] or 0
            steps = migrations("sqlite")
            refuse_newer(current, steps[-1].version)
            # A step may rebuild a table that keys point at (SQLite's procedure for schema
            # changes that ALTER cannot make): key enforcement is off while steps run, and
            # every key is checked before each step commits.
            connection.execute("PRAGMA foreign_keys = OFF")
            try:
                for step in steps:
                    if step.version > current:
                        _apply_step(connection, step)
            finally:
                if connection.in_transaction:  # a step failed: none of it stays
                    connection.execute("ROLLBACK")
                connection.execute("PRAGMA foreign_keys = ON")
            return steps[-1].version

        try:
            return await self.call(apply)
        except sqlite3.Error as error:
            raise MigrationError(f"migration failed: {error}") from error

    async def check_schema(self) -> None:
        def version(connection: sqlite3.Connection) -> int:
            if connection.execute(_SCHEMA_TABLE).fetchone() is None:
                return 0
            return int(connection.execute(SCHEMA_VERSION).fetchone()[0] or 0)

        require_current(await self.call(version), "sqlite")

    async def back_up(self, to: Path) -> int:
        def copy(connection: sqlite3.Connection) -> int:
            if to.exists():
                raise StoreError(f"{to} exists: back up to a new file")
            partial = to.with_name(f".{to.name}.partial")
            try:
                target = sqlite3.connect(partial)
                try:
                    # One step: one read transaction, so one moment of the store, while the
                    # writers go on (WAL); a copy in steps would start again at each write.
                    connection.backup(target)
                finally:
                    target.close()
                partial.rename(to)
            finally:
                partial.unlink(missing_ok=True)
            return to.stat().st_size

        try:
            return await self.call(copy)
        except (sqlite3.Error, OSError) as error:
            raise StoreError(f"cannot back up to {to}: {error}") from error

    async def run(
        self,
        work: Callable[Concatenate[Session, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        job: _Job = ((work, args, kwargs), asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        if self._group is None and self._gathering is None:
            self._start_group()
        # A caller that stops waiting cancels its future: a job not started is skipped, a
        # job already running finishes with its group and its result is dropped.
        with _refusals():
            return await job[1]  # type: ignore[no-any-return]  # the future of `work`'s result

    async def read(
        self,
        work: Callable[Concatenate[Session, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `work` on a connection and thread of its own that may only read: WAL lets
        it read one moment of the store while a writer goes on. (A store in memory has
        one connection: its reads run in turn with the writes.)"""
        path = self._url.removeprefix(PREFIX)
        if path == ":memory:":
            return await self.run(work, *args, **kwargs)

        def reading() -> T:
            if self._reader is None:
                self._reader = _connect(path)
                self._reader.execute("PRAGMA query_only = ON")
            reader = self._reader
            reader.execute("BEGIN")
            try:
                return _to_end(work(_SqliteSession(reader), *args, **kwargs))
            finally:
                reader.execute("ROLLBACK")

        if self._closed:
            raise StoreError("the store is closed")
        with _refusals():
            return await asyncio.get_running_loop().run_in_executor(self._reading, reading)

    def _start_group(self) -> None:
        """Send the waiting jobs (up to GROUP) to the thread as one transaction.

        A group starts the moment the one before it ends (from that group's done callback,
        before its callers run again), so that the thread works on the next group while
        the event loop serves the callers of the last one. Under load it waits GATHER_S
        first (see `_group_done`).
        """
        self._gathering = None
        group = [self._waiting.popleft() for _ in range(min(len(self._waiting), GROUP))]
        jobs = [job for job in group if not job[1].cancelled()]
        connection = self._connection
        if connection is None:
            _answer([(job, StoreError("the store is closed"), True) for job in jobs])
            return
        if not jobs:
            if self._waiting:
                self._start_group()
            return
        running = asyncio.get_running_loop().run_in_executor(
            self._executor, _commit, connection, self._turns, jobs
        )
        running.add_done_callback(functools.partial(self._group_done, jobs=jobs))
        self._group = running

    def _group_done(
        self, running: asyncio.Future[tuple[list[_Outcome], list[_Job]]], jobs: list[_Job]
    ) -> None:
        self._group = None
        error = running.exception()
        if error is None:
            outcomes, again = running.result()
            self._waiting.extendleft(reversed(again))
        else:
            # BEGIN or COMMIT failed: nothing of the group is committed, and its callers
            # are told so.
            outcomes = [(job, error, True) for job in jobs]
        if len(jobs) > 1 and len(self._waiting) < len(jobs):
            # The last group had company and fewer callers wait now than it had: the
            # others are still making their work. A commit costs about the same for more
            # jobs, so the next group waits a moment for them (as PostgreSQL's
            # commit_delay does); with batches of 100 this took a tenth off the store's
            # time a tap.
            self._gathering = asyncio.get_running_loop().call_later(GATHER_S, self._start_group)
        elif self._waiting:
            self._start_group()
        _answer(outcomes)

    async def close(self) -> None:
        """Finish the transactions already asked for, then close the file (once: closing
        again does nothing more)."""
        reading_open, self._closed = not self._closed, True
        while self._group is not None or self._gathering is not None:
            if self._gathering is not None:
                self._gathering.cancel()
                self._start_group()
            if self._group is not None:
                await asyncio.wait([self._group])
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await self._on_thread(connection.close)
        if self._turns is not None:
            turns, self._turns = self._turns, None
            os.close(turns)
        self._executor.shutdown(wait=True)

        def close_reader() -> None:  # after the reads already asked for, on their thread
            if self._reader is not None:
                reader, self._reader = self._reader, None
                reader.close()

        if reading_open:
            await asyncio.get_running_loop().run_in_executor(self._reading, close_reader)
            self._reading.shutdown(wait=True)
