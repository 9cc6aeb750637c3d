"""Transactions the benchmarks run in a store.

A module of their own, imported by name: the SQLite store runs jobs in its writer
process, which finds a function by its module and name, and a benchmark run with
`python -m` is `__main__` there."""

from __future__ import annotations

from collections.abc import Sequence

from farebox.server.ledger import writes
from farebox.server.ledger.store import TRANSFER_COLUMNS, Session
from farebox.server.sync.ingest import RECORD_COLUMNS


async def insert_transfers(session: Session, rows: Sequence[tuple[object, ...]]) -> None:
    """Transfer rows alone into the ledger's `transfers` table: the ledger's ceiling."""
    await session.insert_rows("transfers", TRANSFER_COLUMNS, rows)


async def disable_balance_trigger(session: Session) -> None:
    """PostgreSQL's balance trigger off, for the ceiling's bare insert."""
    await session.execute("ALTER TABLE transfers DISABLE TRIGGER transfers_apply")


async def write_upload(
    session: Session, records: Sequence[tuple[object, ...]], posting: writes.Posting
) -> None:
    """A batch's records and fare postings, made beforehand: the ingest's ceiling."""
    await session.insert_rows("records", RECORD_COLUMNS, records)
    await writes.post_transfers(session, posting)
