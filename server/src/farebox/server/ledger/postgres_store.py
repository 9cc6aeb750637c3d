"""The PostgreSQL store: the production ledger, shared by several server processes.

Transfers go in by COPY into a per-connection staging table and one INSERT ... SELECT
... ON CONFLICT DO NOTHING, in key order, so that two servers posting overlapping batches
take their locks in the same order and the later one skips what the earlier one wrote.
The staging table empties itself at each commit (ON COMMIT DELETE ROWS): emptied by DELETE
alone, it kept its dead rows for the whole session and every batch scanned them again.
Connections run with plan_cache_mode = force_custom_plan: array statements became four
times slower here once PostgreSQL switched them to a generic plan. A transaction that
loses a deadlock or serialization race is retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from farebox.server.errors import (
    MigrationError,
    OutOfRangeError,
    StoreError,
    StoreFullError,
    UnknownAccountError,
)
from farebox.server.ledger.migrations import (
    SCHEMA_VERSION,
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

T = TypeVar("T")
P = ParamSpec("P")

RETRIES = 5
CONNECT_S = 10
"""How long a connection may take to open; asyncpg's own default is a minute."""
# The server went away (it restarted, failed over or stopped, or the network broke), or
# takes no more connections (max_connections, or the role's connection limit).
_LOST = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
# What a pooled connection that the server closed while it was idle can raise when it is
# next asked to begin, before the pool has noticed: nothing was asked of it yet.
_BROKEN_BEFORE_BEGIN = (*_LOST, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)
MIGRATION_LOCK = 0x66617265  # an arbitrary advisory lock id, the same in every process

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS transfer_stage (
    key text, kind text, phase text, debit text, credit text,
    currency text, amount bigint, event_ms bigint, posted_ms bigint, reference text,
    fare_day text, device text, seq bigint, stop text, category text, origin text,
    timeout_ms bigint
) ON COMMIT DELETE ROWS
"""
_COLUMNS = ", ".join(TRANSFER_COLUMNS)
# Empties the stage in the same statement: a rollback brings back only an empty stage.
_INSERT_STAGED = (
    "WITH staged AS (DELETE FROM transfer_stage RETURNING *) "  # noqa: S608 (fixed names)
    f"INSERT INTO transfers ({_COLUMNS}) SELECT {_COLUMNS} FROM staged "
    "ORDER BY key ON CONFLICT DO NOTHING RETURNING key, id, posted_ms"
)
_OPEN_ACCOUNTS = (
    f"INSERT INTO accounts ({', '.join(ACCOUNT_COLUMNS)}) "  # noqa: S608 (fixed names)
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],"
    " $6::bigint[]) AS a ORDER BY 1 ON CONFLICT DO NOTHING"
)
# The keys as an array the planner sees whole: a bitmap probe of the index for a batch's
# keys, a scan for a very large batch. (Joined from unnest() instead, the probes for a
# batch's riders took twice as long, half of it planning.)
_ANY = "= ANY ($1::text[])"


def _past_bigint(error: Exception) -> bool:
    """Whether `error` is an integer past bigint: a sum in a statement, or an argument
    asyncpg could not send (COPY raises the OverflowError as is, other statements a
    DataError caused by it)."""
    overflow = (OverflowError, asyncpg.NumericValueOutOfRangeError)
    return isinstance(error, overflow) or isinstance(error.__cause__, OverflowError)


async def _prepare(connection: asyncpg.Connection) -> None:
    await connection.execute(_STAGE)


class _PostgresSession:
    def __init__(self, connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        self._connection = connection

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return [tuple(record) for record in await self._connection.fetch(sql, *args)]

    async def execute(self, sql: str, *args: object) -> None:
        await self._connection.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            await self._connection.executemany(sql, rows)

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        # COPY checks the same constraints and fires the same insert triggers as INSERT;
        # for the 500 raw records of a batch it is ten times cheaper than executemany.
        if rows:
            await self._connection.copy_records_to_table(table, records=rows, columns=columns)

    async def open_accounts(self, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            await self._connection.execute(_OPEN_ACCOUNTS, *map(list, zip(*rows, strict=True)))

    async def insert_transfers(self, rows: Sequence[Sequence[object]]) -> list[Row]:
        await self._connection.copy_records_to_table(
            "transfer_stage", records=rows, columns=TRANSFER_COLUMNS
        )
        try:
            inserted = await self._connection.fetch(_INSERT_STAGED)
        except asyncpg.ForeignKeyViolationError as error:
            raise UnknownAccountError(
                "a transfer names an unknown account, or one of another currency"
            ) from error
        return [tuple(record) for record in inserted]

    async def fetch_among(self, sql: str, keys: Sequence[str]) -> list[Row]:
        return await self.fetch(sql.replace(AMONG, _ANY), list(keys))

    async def lock_stoplist_head(self) -> Row:
        (head,) = await self.fetch("SELECT version, checksum FROM stoplist_head FOR UPDATE")
        return head


class PostgresStore:
    """A ledger in a PostgreSQL database, through a pool of asyncpg connections."""

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self._url = url
        self._pool = pool

    @property
    def url(self) -> str:
        return self._url

    @classmethod
    async def open(cls, url: str, *, connections: int = 4) -> PostgresStore:
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=connections,
                init=_prepare,
                timeout=CONNECT_S,
                server_settings={"plan_cache_mode": "force_custom_plan"},
            )
        except (OSError, asyncpg.PostgresError) as error:
            raise StoreError(f"cannot open the PostgreSQL store: {error}") from error
        return cls(url, pool)

    async def migrate(self) -> int:
        steps = migrations("postgres")
        async with self._pool.acquire() as connection, connection.transaction():
            # Two servers starting at once must not both apply the same step.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await connection.execute("CREATE TABLE IF NOT EXISTS ledger_schema (version int)")
            current = await connection.fetchval(SCHEMA_VERSION) or 0
            refuse_newer(current, steps[-1].version)
            for step in steps:
                if step.version > current:
                    try:
                        await connection.execute(step.sql)
                    except asyncpg.PostgresError as error:
                        raise MigrationError(f"migration {step.version} failed: {error}") from error
                    await connection.execute("INSERT INTO ledger_schema VALUES ($1)", step.version)
        return steps[-1].version

    async def check_schema(self) -> None:
        async with self._pool.acquire() as connection:
            if await connection.fetchval("SELECT to_regclass('ledger_schema')") is None:
                found = 0
            else:
                found = await connection.fetchval(SCHEMA_VERSION) or 0
        require_current(found, "postgres")

    async def back_up(self, to: Path) -> int:
        raise StoreError(
            "backup copies the embedded SQLite store; back up PostgreSQL with its own tools"
            " (pg_dump, or base backups with WAL archiving)"
        )

    async def run(
        self,
        work: Callable[Concatenate[Session, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        attempt = 1
        while True:
            connection = session = None
            try:
                async with self._pool.acquire() as connection, connection.transaction():
                    session = _PostgresSession(connection)
                    return await work(session, *args, **kwargs)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == RETRIES:
                    raise
                await asyncio.sleep(0.01 * 2**attempt)
            except asyncpg.DiskFullError as error:
                raise StoreFullError(f"the PostgreSQL store is full: {error}") from error
            except (OverflowError, asyncpg.DataError) as error:
                if not _past_bigint(error):
                    raise
                raise OutOfRangeError from error
            except _BROKEN_BEFORE_BEGIN as error:
                # A job whose connection broke at BEGIN goes to another one at once (a
                # restarted server leaves every pooled connection broken). One that began
                # may have committed just before its connection broke: its caller decides.
                began = session is not None
                if began and not isinstance(error, _LOST):
                    raise
                if connection is None or began or attempt == RETRIES:
                    raise StoreError(f"the PostgreSQL store cannot be reached: {error}") from error
            attempt += 1

    async def read(
        self,
        work: Callable[Concatenate[Session, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        # A PostgreSQL reader holds up no writer (MVCC): a transaction like any other.
        return await self.run(work, *args, **kwargs)

    async def close(self) -> None:
        await self._pool.close()
