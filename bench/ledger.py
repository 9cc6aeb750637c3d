"""Ledger posting throughput on SQLite and PostgreSQL, beside the bare insert ceiling.

For batches of 100 and 1000 accepted taps (each batch one validator's consecutive records,
as uploads are, eight validators' uploads in flight at once), the figure is taps posted
per second through `Ledger.post_taps` (accounts opened, idempotent insert, balances,
stoplist, fare-day marks; each batch atomic, and on SQLite the batches that wait together
share one commit). The ceiling is the bare insert of the same transfer rows into the
ledger's own `transfers` table, with its keys, checks and indexes, by the same store, as
many batches in flight, each its own transaction: the storage write of the same rows
without the posting (no balances, stoplist, idempotent answers or fare-day marks; on
PostgreSQL its balance trigger is disabled for this, on SQLite balances are a statement
of their own). Below the table, the same rows into a table with no keys, checks or
indexes, for comparison. Each figure is the best of three runs on fresh stores.

    .venv/bin/python -m bench.ledger

PostgreSQL comes from FAREBOX_BENCH_POSTGRES (a DSN of an empty database) if set, else
from a throwaway cluster when the server binaries are installed; else it is skipped.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import asyncpg

from bench.table import Row, render
from farebox.protocol.money import Money
from farebox.server.collector import tune_collector
from farebox.server.ledger.accounts import Channel, clearing_account, rider_account
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.postgres_store import PostgresStore
from farebox.server.ledger.posting import (
    FareTap,
    TopUp,
    fare_accounts,
    fare_transfer,
    top_up_transfer,
)
from farebox.server.ledger.store import TRANSFER_COLUMNS, Session, open_store
from farebox.server.ledger.writes import transfer_row
from tests.support.postgres import server_bin_dir, throwaway_cluster

T = TypeVar("T", bound=Sized)
POSTGRES_DSN = "FAREBOX_BENCH_POSTGRES"
"""A DSN of an empty PostgreSQL database to measure against (else a throwaway cluster)."""

TAPS = 30_000
RIDERS = 20_000
DEVICES = 300
ROUTES = 40
BATCHES = (100, 1000)
AT_ONCE = 8
"""Uploads in flight at once, as from several validators syncing at the same time."""
RUNS = 3
"""Runs per figure, the best one kept (as timeit does): the 2-core machine is shared."""
POLICY = FareDayPolicy.parse("Asia/Almaty", "03:00")
START_MS = int(datetime(2026, 3, 2, 1, 0, tzinfo=UTC).timestamp() * 1000)

_PLAIN_COLUMNS = ", ".join(
    f"{name} {kind}"
    for name, kind in zip(
        TRANSFER_COLUMNS,
        [
            "text",
            "text",
            "text",
            "text",
            "text",
            "text",
            "bigint",
            "bigint",
            "bigint",
            "text",
            "text",
            "text",
            "bigint",
            "text",
            "text",
            "text",
            "bigint",
        ],
        strict=True,
    )
)


def make_batches(count: int, size: int) -> list[list[FareTap]]:
    """Uploads as the sync protocol makes them: each batch is one validator's next `size`
    records (consecutive seqs), the validators taking turns, riders drawn at random."""
    rng = random.Random(size)
    batches = []
    for number in range(count // size):
        device = number % DEVICES
        first = number // DEVICES * size + 1
        batches.append(
            [
                FareTap(
                    device=f"bus-{size}-{device:03d}",
                    seq=first + offset,
                    token=f"nfc:{rng.randrange(RIDERS):08x}",
                    time_ms=START_MS + (number * size + offset) * 50,
                    carrier=f"carrier{device % 7}",
                    route=str(device % ROUTES),
                    fare=Money(15000, "KZT"),
                    stop=f"s{rng.randrange(500)}",
                    category="adult",
                )
                for offset in range(size)
            ]
        )
    return batches


def rows_of(batches: list[list[FareTap]]) -> list[list[tuple[object, ...]]]:
    return [[transfer_row(fare_transfer(tap, POLICY), START_MS) for tap in b] for b in batches]


async def timed(action: Callable[[], Awaitable[None]], count: int) -> float:
    start = time.perf_counter()
    await action()
    return count / (time.perf_counter() - start)


async def fund_riders(ledger: Ledger, taps: Sequence[FareTap]) -> None:
    """Top every rider up first, as on a working day, so that few taps touch the stoplist."""
    tokens = sorted({tap.token for tap in taps})
    for start in range(0, len(tokens), 5000):
        top_ups = [
            top_up_transfer(TopUp(token, Money(10**7, "KZT"), Channel.KIOSK, token, START_MS))
            for token in tokens[start : start + 5000]
        ]
        riders = [rider_account(token, "KZT") for token in tokens[start : start + 5000]]
        await ledger.post(top_ups, [clearing_account(Channel.KIOSK, "KZT"), *riders])


async def in_flight(batches: Sequence[T], post: Callable[[T], Awaitable[object]]) -> float:
    """Post every batch, AT_ONCE in flight (each poster takes the next one when its last is
    done); return taps per second."""
    pending = iter(batches)

    async def poster() -> None:
        for batch in pending:
            await post(batch)

    async def post_all() -> None:
        await asyncio.gather(*(poster() for _ in range(AT_ONCE)))

    return await timed(post_all, sum(map(len, batches)))


async def ledger_rate(url: str, batches: list[list[FareTap]]) -> float:
    store = await open_store(url)
    try:
        await store.migrate()
        ledger = Ledger(store, POLICY)
        await fund_riders(ledger, [tap for batch in batches for tap in batch])
        rate = await in_flight(batches, ledger.post_taps)
        problems = await ledger.violations()
        if problems:
            raise SystemExit(f"the ledger broke its invariants: {problems[:3]}")
        return rate
    finally:
        await store.close()


async def bare_insert_rate(
    url: str, batches: list[list[FareTap]], rows: list[list[tuple[object, ...]]]
) -> float:
    """The ceiling: the same rows into the ledger's `transfers` table by the same store
    (see the module's docstring), the accounts they name opened first."""
    store = await open_store(url)
    try:
        await store.migrate()
        ledger = Ledger(store, POLICY)
        taps = [tap for batch in batches for tap in batch]
        await ledger.post([], fare_accounts(taps, lambda t, c, k: rider_account(t, c)))
        if isinstance(store, PostgresStore):  # the balances' trigger is PostgreSQL's
            await store.run(disable_balance_trigger)
        return await in_flight(rows, lambda batch_rows: store.run(insert_transfers, batch_rows))
    finally:
        await store.close()


async def insert_transfers(session: Session, rows: list[tuple[object, ...]]) -> None:
    await session.insert_rows("transfers", TRANSFER_COLUMNS, rows)


async def disable_balance_trigger(session: Session) -> None:
    await session.execute("ALTER TABLE transfers DISABLE TRIGGER transfers_apply")


def sqlite_unindexed(path: Path, batches: list[list[tuple[object, ...]]]) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(f"CREATE TABLE plain ({_PLAIN_COLUMNS.replace('bytea', 'blob')})")
    insert = f"INSERT INTO plain VALUES ({', '.join('?' for _ in TRANSFER_COLUMNS)})"  # noqa: S608
    start = time.perf_counter()
    for rows in batches:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(insert, rows)
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return sum(map(len, batches)) / elapsed


async def postgres_unindexed(dsn: str, batches: list[list[tuple[object, ...]]]) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"CREATE TABLE plain ({_PLAIN_COLUMNS})")

        async def copy_all() -> None:
            for rows in batches:
                async with connection.transaction():
                    await connection.copy_records_to_table(
                        "plain", records=rows, columns=TRANSFER_COLUMNS
                    )

        return await timed(copy_all, sum(map(len, batches)))
    finally:
        await connection.close()


async def fresh_database(admin_dsn: str, name: str) -> str:
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}"


@dataclass(frozen=True, slots=True)
class Backend:
    label: str
    target: str
    url: Callable[[str], Awaitable[str]]
    """A fresh store of this kind, by name."""
    unindexed: Callable[[str, list[list[tuple[object, ...]]]], Awaitable[float]]
    """The rows into a table with no keys, checks or indexes (for comparison)."""


def backends(scratch: Path, admin_dsn: str | None) -> list[Backend]:
    async def sqlite_url(name: str) -> str:
        return f"sqlite:///{scratch / name}.db"

    async def sqlite_plain(name: str, rows: list[list[tuple[object, ...]]]) -> float:
        return sqlite_unindexed(scratch / f"{name}.db", rows)

    found = [Backend("SQLite", ">= 25,000", sqlite_url, sqlite_plain)]
    if admin_dsn is not None:
        dsn = admin_dsn

        async def postgres_url(name: str) -> str:
            return await fresh_database(dsn, name)

        async def postgres_plain(name: str, rows: list[list[tuple[object, ...]]]) -> float:
            return await postgres_unindexed(await fresh_database(dsn, name), rows)

        found.append(Backend("PostgreSQL", ">= 20,000", postgres_url, postgres_plain))
    return found


async def measure(admin_dsn: str | None) -> tuple[list[Row], list[str]]:
    """Each figure and ceiling is the best of RUNS runs, each on a fresh store; with them,
    the lines that compare with a table with no index."""
    rows, lines = [], []
    with tempfile.TemporaryDirectory(prefix="farebox-bench-") as scratch:
        for size in BATCHES:
            batches = make_batches(TAPS, size)
            plain = rows_of(batches)
            for kind in backends(Path(scratch), admin_dsn):
                names = [f"{kind.label.lower()}_{size}_{n}" for n in range(RUNS)]
                ceiling = max([
                    await bare_insert_rate(await kind.url(f"bare_{name}"), batches, plain)
                    for name in names
                ])  # fmt: skip
                rate = max([await ledger_rate(await kind.url(name), batches) for name in names])
                unindexed = max([await kind.unindexed(f"plain_{name}", plain) for name in names])
                what = f"{kind.label}, batches of {size}"
                rows.append(Row(what, rate, "taps/s", ceiling, kind.target))
                lines.append(
                    f"- {what}: {unindexed:,.1f} taps/s (the ledger: {rate / unindexed:.2f})"
                )
    return rows, lines


def main() -> None:
    tune_collector()  # as `farebox-server run` does: the ledger runs in a server
    configured = os.environ.get(POSTGRES_DSN)
    bin_dir = server_bin_dir()
    if configured or bin_dir is None:
        rows, lines = asyncio.run(measure(configured))
    else:
        with throwaway_cluster(bin_dir) as cluster:
            rows, lines = asyncio.run(measure(cluster.dsn()))
    print(render("Ledger posting throughput (taps per second)", rows))
    print("\nFor comparison, the same rows into a table with no keys, checks or indexes, one")
    print("transaction per batch, one batch at a time:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
