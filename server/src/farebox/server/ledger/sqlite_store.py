"""The SQLite store: one file, zero set-up, the embedded default.

sqlite3 blocks, so the connection lives on one dedicated thread and every statement is
handed to it; the event loop only awaits. An asyncio lock gives each transaction the
connection to itself (SQLite has one writer anyway), and `BEGIN IMMEDIATE` takes the
write lock up front so that a transaction never fails half-way on a busy database. The
file is in WAL mode with synchronous=FULL: a posting that was acknowledged survives a
power cut.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

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

T = TypeVar("T")
PREFIX = "sqlite:///"

_INSERT_TRANSFER = (
    f"INSERT INTO transfers ({', '.join(TRANSFER_COLUMNS)}) "  # noqa: S608 (fixed names)
    f"VALUES ({', '.join('?' for _ in TRANSFER_COLUMNS)}) ON CONFLICT DO NOTHING"
)
_OPEN_ACCOUNT = (
    f"INSERT INTO accounts ({', '.join(ACCOUNT_COLUMNS)}) "  # noqa: S608 (fixed names)
    f"VALUES ({', '.join('?' for _ in ACCOUNT_COLUMNS)}) ON CONFLICT DO NOTHING"
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


class SqliteStore:
    """A ledger in one SQLite file, driven from a dedicated thread."""

    def __init__(self, url: str, executor: ThreadPoolExecutor) -> None:
        self._url = url
        self._executor = executor
        self._connection: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

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
        async with self._lock:
            await self.call(lambda c: c.execute("BEGIN IMMEDIATE"))
            try:
                result = await work(_SqliteSession(self))
            except BaseException:
                await self.call(lambda c: c.execute("ROLLBACK"))
                raise
            await self.call(lambda c: c.execute("COMMIT"))
            return result

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await self._on_thread(connection.close)
        self._executor.shutdown(wait=True)
