"""The storage interface: a transaction runner over one of two databases.

The ledger's reads and writes are written once, against `Session`; each store supplies a
session inside one database transaction. SQL is written in PostgreSQL's `$1` placeholder
style and shared by both stores wherever the statement is truly the same; the SQLite store
rewrites placeholders to its own numbered `?1` form. What differs is behind the session's
few store-specific methods: bulk inserts (PostgreSQL: COPY, for transfers into a staging
table, then INSERT ... ON CONFLICT DO NOTHING), statements over a list of keys (a list is
one parameter in PostgreSQL, a JSON array in SQLite) and the row lock on the stoplist head.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from farebox.server.errors import UnsupportedStoreError

T = TypeVar("T")
P = ParamSpec("P")
Row = Sequence[Any]

TRANSFER_COLUMNS = (
    "key",
    "kind",
    "phase",
    "debit",
    "credit",
    "currency",
    "amount",
    "event_ms",
    "posted_ms",
    "reference",
    "fare_day",
    "device",
    "seq",
    "stop",
    "category",
    "origin",
    "timeout_ms",
)
ACCOUNT_COLUMNS = ("id", "kind", "currency", "credit_limit", "category", "opened_ms")
AMONG = "{among}"
"""Stands in a statement of `Session.fetch_among` for the test that a column's value is one
of the keys: `WHERE token {among}`. Each store writes the test its own way."""


class Session(Protocol):
    """Statements inside one open database transaction."""

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...

    async def execute(self, sql: str, *args: object) -> None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        """Insert `rows` into `table`, as one INSERT per row would: every constraint and
        trigger applies and a violation fails the call. PostgreSQL sends them by COPY.

        `table` and `columns` are names fixed in code, never input.
        """
        ...

    async def open_accounts(self, rows: Sequence[Sequence[object]]) -> None:
        """Insert accounts (ACCOUNT_COLUMNS) that do not exist yet; leave the others alone."""
        ...

    async def insert_transfers(self, rows: Sequence[Sequence[object]]) -> list[Row]:
        """Insert transfers (TRANSFER_COLUMNS), skipping any that breaks a unique constraint.

        Returns (key, id, posted_ms) of the rows this call inserted.
        """
        ...

    async def fetch_among(self, sql: str, keys: Sequence[str]) -> list[Row]:
        """The rows of `sql`, a statement whose only parameter is the list of text `keys`,
        named where AMONG stands: one statement, however many keys."""
        ...

    async def lock_stoplist_head(self) -> Row:
        """(version, checksum) of the stoplist, locked until the transaction ends."""
        ...


class Store(Protocol):
    """A ledger database: migrations, and transactions that commit or leave no trace."""

    @property
    def url(self) -> str: ...

    async def migrate(self) -> int:
        """Bring the schema to this code's version; return the version."""
        ...

    async def check_schema(self) -> None:
        """MigrationError unless the schema is at this code's version (see `migrate`)."""
        ...

    async def back_up(self, to: Path) -> int:
        """Copy the whole store, as of one moment, to the new file `to` while others go on
        writing; return the copy's size in bytes. StoreError where the store cannot."""
        ...

    async def run(
        self,
        work: Callable[Concatenate[Session, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `work(session, *args, **kwargs)` in one transaction: commit if it returns,
        roll back if it raises."""
        ...

    async def read(
        self,
        work: Callable[Concatenate[Session, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `work`, which only reads, in one transaction; where the store can, beside
        the writers rather than in turn with them (a report over a day's taps must not
        hold up the uploads)."""
        ...

    async def close(self) -> None: ...


async def open_store(url: str) -> Store:
    """Open the store a URL names: `sqlite:///path` or `postgresql://...`."""
    if url.startswith("sqlite:///"):
        from farebox.server.ledger.sqlite_store import SqliteStore

        return await SqliteStore.open(url)
    if url.startswith(("postgresql://", "postgres://")):
        # Imported here so that an SQLite deployment never loads the PostgreSQL driver.
        from farebox.server.ledger.postgres_store import PostgresStore

        return await PostgresStore.open(url)
    scheme = url.split(":", 1)[0]
    raise UnsupportedStoreError(f"unsupported store {scheme!r}: use sqlite:/// or postgresql://")
