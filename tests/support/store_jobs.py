"""Jobs and writer actions the tests run in a store.

They live in a module of their own, imported by name: the SQLite store runs jobs in its
writer process, which finds a function by its module and name (test modules are imported
under names of pytest's making, which the writer cannot import)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from farebox.server.ledger.store import Row, Session
from farebox.server.sync import publishing


async def fetch(session: Session, sql: str, *args: object) -> list[Row]:
    return await session.fetch(sql, *args)


async def execute(session: Session, sql: str, *args: object) -> None:
    await session.execute(sql, *args)


async def break_the_transaction(session: Session) -> None:
    """Fail as a full disk does: SQLite has rolled the whole transaction back."""
    await session.execute("ROLLBACK")
    raise OSError("the disk is full")


async def hold_the_writer(_: Session, seconds: float) -> None:
    time.sleep(seconds)  # noqa: ASYNC251 - holds the writer, as a long statement would


async def wait_for_the_loop(session: Session) -> None:
    await session.execute("UPDATE accounts SET credit_limit = 500 WHERE kind = 'rider'")
    await asyncio.sleep(0)


_TRACED: list[str] = []
"""The SQL the writer's connection ran since `trace` (kept in the writer process)."""


def trace(connection: sqlite3.Connection) -> None:
    _TRACED.clear()
    connection.set_trace_callback(_TRACED.append)


def commits(_: sqlite3.Connection) -> int:
    return _TRACED.count("COMMIT")


def query(connection: sqlite3.Connection, sql: str, *args: object) -> list[tuple[object, ...]]:
    return connection.execute(sql, args).fetchall()


async def insert_rows(
    session: Session, table: str, columns: tuple[str, ...], rows: list[tuple[object, ...]]
) -> None:
    await session.insert_rows(table, columns, rows)


async def package_key_id(session: Session) -> bytes:
    """The id of the key that signs new packages now."""
    return (await publishing.signing_key(session, 0)).key_id


def pause(_: sqlite3.Connection, seconds: float) -> str:
    time.sleep(seconds)
    return "paused"
