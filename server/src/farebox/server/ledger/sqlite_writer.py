"""The SQLite store's writer: the process that holds the connection and runs transactions.

`SqliteStore` (sqlite_store.py) starts one per store and sends it requests over a socket
pair, each a frame of pickled values: a group of jobs to run in one transaction (each job
a module-level function, its arguments and keyword arguments, pickled on its own), or an
action on the connection (migrations, tests). The answer to a group is each job's outcome,
pickled on its own, so that one result that will not travel fails only its own caller.

Whole transactions run here, jobs and all: a job awaits only its session, whose
statements run at once, so a transaction makes no round trip to the event loop; and in a
process of its own the writer never waits for the GIL while an event loop decodes
uploads. The file is in WAL mode with synchronous=FULL: a posting that was acknowledged
survives a power cut. Stores sharing the file, in one process or several, take turns to
write through an OS lock on a file beside it (`<file>-writer`): a waiting writer wakes
the moment the lock is let go, where SQLite's busy handler would sleep between polls.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import json
import os
import pickle
import re
import signal
import socket
import sqlite3
import struct
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from farebox.server.errors import MigrationError, StoreError, UnknownAccountError
from farebox.server.ledger.migrations import Migration
from farebox.server.ledger.store import (
    ACCOUNT_COLUMNS,
    MISMATCH_COLUMNS,
    MISMATCH_CONDITION,
    TRANSFER_COLUMNS,
    Row,
)
from farebox.server.ledger.writes import marking_fare_days

T = TypeVar("T")
MEMORY = ":memory:"
TURNS = "-writer"
"""The suffix of the file beside the database through which writers take turns."""
BUSY_S = 10
"""How long a statement waits for another connection's lock before it fails."""
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

_MISMATCHES = (
    f"{MISMATCH_COLUMNS} FROM accounts"  # noqa: S608 (fixed text)
    f" WHERE id IN (SELECT value FROM json_each($1)) AND {MISMATCH_CONDITION}"
)


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
    """Statements of the transaction the writer has open. Its coroutines never suspend:
    each runs its statement there and then (see `_to_end`)."""

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


def _to_end(work: Awaitable[T]) -> T:
    """Run a job's coroutine to its end at once.

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


Call = tuple[Callable[..., Awaitable[Any]], tuple[Any, ...], dict[str, Any]]
"""A job: its work, and the arguments and keyword arguments it takes after the session."""
Outcome = tuple[int, object, bool]
"""A job's index, and its result or the error it failed with (True)."""


def _commit(
    connection: sqlite3.Connection, turns: int | None, jobs: Sequence[Call]
) -> tuple[list[Outcome], list[int]]:
    """Run `jobs` in one transaction, each in a savepoint of its own, and commit once.

    Runs in the writer process, jobs and all, so that a group needs no round trip to the
    event loop between its statements, in the writers' turn taken on `turns`. Returns the
    outcome of each job by its index, and the indices of the jobs to run again: those
    whose work was lost with a transaction that SQLite rolled back as a whole.
    """
    with _turn(turns):
        connection.execute("BEGIN IMMEDIATE")
        try:
            return _run_jobs(connection, jobs)
        finally:
            if connection.in_transaction:  # COMMIT was not reached, or failed
                connection.execute("ROLLBACK")


def _run_jobs(
    connection: sqlite3.Connection, jobs: Sequence[Call]
) -> tuple[list[Outcome], list[int]]:
    session = _SqliteSession(connection)
    alone = len(jobs) == 1
    outcomes: list[Outcome] = []
    for index, (work, args, kwargs) in enumerate(jobs):
        if not alone:
            connection.execute("SAVEPOINT job")
        try:
            result = _to_end(work(session, *args, **kwargs))
        except Exception as error:  # noqa: BLE001 - handed to the job's caller
            if not connection.in_transaction:
                # SQLite rolled the whole transaction back (a full disk, an I/O error): the
                # jobs before this one lost their work too and go round again.
                failures = [outcome for outcome in outcomes if outcome[2]]
                done = [done for done, _, failed in outcomes if not failed]
                return [*failures, (index, error, True)], [*done, *range(index + 1, len(jobs))]
            if alone:
                connection.execute("ROLLBACK")
            else:
                connection.execute("ROLLBACK TO job")
                connection.execute("RELEASE job")
            outcomes.append((index, error, True))
            continue
        if not alone:
            connection.execute("RELEASE job")
        outcomes.append((index, result, False))
    if connection.in_transaction:  # else the only job failed and was rolled back
        connection.execute("COMMIT")
    return outcomes, []


def migrate(connection: sqlite3.Connection, steps: Sequence[Migration]) -> int:
    """Apply the `steps` above the schema's version, each in a transaction of its own."""
    connection.execute("CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER)")
    connection.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS ledger_schema_once ON ledger_schema (version)"
    )
    row = connection.execute("SELECT max(version) FROM ledger_schema").fetchone()
    current = row[0] or 0
    if current > steps[-1].version:
        raise MigrationError(f"schema version {current} is newer than this code")
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


GROUP = "group"
"""A request to run jobs in one transaction: a list of pickled `Call`s."""
ACTION = "action"
"""A request to run a function with the connection: a pickled (function, arguments)."""

_FRAME = struct.Struct("!I")
"""The length of the pickled frame that follows."""


def frame(value: object) -> bytes:
    """`value` pickled, behind its length."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(data)) + data


def frame_length(header: bytes) -> int:
    (length,) = _FRAME.unpack(header)
    return int(length)


HEADER = _FRAME.size


def _receive(channel: socket.socket) -> tuple[str, Any] | None:
    """The next request (its kind and payload), or None once the store has hung up."""
    header = _read(channel, HEADER)
    if header is None:
        return None
    data = _read(channel, frame_length(header))
    if data is None:
        return None
    kind, payload = pickle.loads(data)  # noqa: S301 (our own store)
    return kind, payload


def _read(channel: socket.socket, size: int) -> bytes | None:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = channel.recv(size - len(buffer))
        if not chunk:
            return None
        buffer += chunk
    return bytes(buffer)


def _outcome_bytes(value: object) -> bytes:
    """`value` pickled; an error that says so if it will not pickle."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # noqa: BLE001 - any value can fail to pickle
        problem = StoreError(
            f"the SQLite writer cannot send a {type(value).__name__} back: {error}"
        )
        return pickle.dumps(problem)


def _group(connection: sqlite3.Connection, turns: int | None, calls: Sequence[bytes]) -> object:
    """Run the jobs of a group request; answer [(index, pickled outcome, failed)], again."""
    jobs: list[Call] = []
    indices: list[int] = []
    answers: list[tuple[int, bytes, bool]] = []
    for index, call in enumerate(calls):
        try:
            jobs.append(pickle.loads(call))  # noqa: S301 (our own store)
            indices.append(index)
        except Exception as error:  # noqa: BLE001 - the job's caller hears of it
            answers.append(
                (index, _outcome_bytes(StoreError(f"cannot load the job: {error}")), True)
            )
    outcomes, again = _commit(connection, turns, jobs) if jobs else ([], [])
    answers += [(indices[i], _outcome_bytes(value), failed) for i, value, failed in outcomes]
    return answers, [indices[i] for i in again]


def _action(connection: sqlite3.Connection, call: bytes) -> tuple[bytes, bool]:
    try:
        action, args = pickle.loads(call)  # noqa: S301 (our own store)
        return _outcome_bytes(action(connection, *args)), False
    except Exception as error:  # noqa: BLE001 - the caller hears of it
        return _outcome_bytes(error), True


def serve(path: str, channel: socket.socket) -> None:
    """The writer process: open the database at `path`, then answer the store's requests
    on `channel` until it hangs up. The first answer says whether the database opened."""
    # Ctrl-C in a terminal reaches the whole process group; the server closes its store.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        connection = _connect(path)
        turns = _open_turns(path)
    except (sqlite3.Error, OSError) as error:
        channel.sendall(frame(str(error)))
        return
    channel.sendall(frame(None))
    with contextlib.closing(connection):
        while (request := _receive(channel)) is not None:
            kind, payload = request
            if kind == GROUP:
                channel.sendall(frame(_group(connection, turns, payload)))
            else:
                channel.sendall(frame(_action(connection, payload)))
