"""The SQLite store's schema and statements: migrations 0005 and 0007 rebuild tables and
keep every row (0007 all but the fingerprint column it drops), migrations check foreign
keys and run once when stores start together, a posting's statements read only its rows,
a settlement's only its rider's day, charging expired holds only the pending transfers,
the taps-per-minute report only its range's records, and rows go in by few statements."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from farebox.server.errors import MigrationError, UnknownAccountError
from farebox.server.ledger import reads, sqlite_store
from farebox.server.ledger.book import Ledger, Settled
from farebox.server.ledger.migrations import Migration, migrations
from farebox.server.ledger.posting import fare_transfer
from farebox.server.ledger.settlement import FlatFareRater
from farebox.server.ledger.sqlite_store import APPLY_BALANCES, MARK_FARE_DAYS, SqliteStore
from farebox.server.ledger.store import TRANSFER_COLUMNS, Session
from farebox.server.sync import reports
from tests.server.conftest import ALMATY, Clock
from tests.server.helpers import at, kzt, tap, top_up

RATER = FlatFareRater(kzt(200), daily_cap=kzt(300))
TABLES = {
    "accounts": "id",
    "transfers": "id",
    "fare_days": "account, fare_day",
    "ledger_schema": "version",
}
Rows = list[tuple[object, ...]]
ACCOUNT_DAY_READS = ("transfers_debit_day", "transfers_credit_day", "transfers_origin")


async def explain(session: Session, sql: str, *args: object) -> Rows:
    return [tuple(row) for row in await session.fetch(f"EXPLAIN QUERY PLAN {sql}", *args)]


async def rows(store: SqliteStore, sql: str, *args: object) -> Rows:
    return await store.call(lambda c: c.execute(sql, args).fetchall())


async def snapshot(store: SqliteStore) -> dict[str, Rows]:
    columns = {
        "transfers": f"id, {', '.join(TRANSFER_COLUMNS)}",  # all but a fingerprint
        "fare_days": "account, fare_day, revision, dirty, settled_ms",  # 0012 adds parking
    }
    tables = {
        table: f"SELECT {columns.get(table, '*')} FROM {table} ORDER BY {order}"  # noqa: S608 (fixed names)
        for table, order in TABLES.items()
    }
    return {table: await rows(store, sql) for table, sql in tables.items()}


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    return await SqliteStore.open(f"sqlite:///{tmp_path}/ledger.db")


# The tables a ledger's rows are in, parents first, and what schema 4 held that today's
# code no longer writes: a transfer's fingerprint (dropped by 0007), here a blank one.
LEDGER_TABLES = ("accounts", "transfers", "fare_days", "fare_day_close", "blocks",
                 "stoplist_changes", "stoplist_head")  # fmt: skip
GONE = {"fingerprint": "zeroblob(32)"}


async def a_ledger_of_schema_4(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Ledger:
    """Every kind of row the rebuilt tables hold, in a file of the schema before 0005.

    Today's code cannot write that schema (0007 dropped a column it required), so the
    rows are written with it into a file of today's schema, then copied over."""
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_store, "migrations", lambda dialect: migrations(dialect)[:4])
        assert await store.migrate() == 4
    today = await SqliteStore.open(f"sqlite:///{tmp_path}/today.db")
    try:
        await today.migrate()
        await write_every_kind_of_row(Ledger(today, ALMATY, clock=Clock.at_ms(at(2, "09:00"))))
    finally:
        await today.close()

    def copy(connection: sqlite3.Connection) -> None:
        connection.execute("ATTACH DATABASE ? AS today", (str(tmp_path / "today.db"),))
        connection.execute("BEGIN IMMEDIATE")
        for table in LEDGER_TABLES:
            names = [row[1] for row in connection.execute(f"PRAGMA main.table_info({table})")]
            values = ", ".join(GONE.get(name, name) for name in names)
            connection.execute(f"DELETE FROM main.{table}")  # noqa: S608 (fixed names)
            connection.execute(
                f"INSERT INTO main.{table} ({', '.join(names)}) SELECT {values} FROM today.{table}"  # noqa: S608 (fixed names)
            )
        connection.execute("COMMIT")
        connection.execute("DETACH DATABASE today")

    await store.call(copy)
    return Ledger(store, ALMATY, clock=Clock.at_ms(at(2, "09:00")))


async def write_every_kind_of_row(ledger: Ledger) -> None:
    await ledger.top_up(top_up("nfc:01", 1000, "sms-1"))
    await ledger.post_taps([tap("bus-1", 1, "nfc:01", at(1, "07:00"))])
    await ledger.post_taps([tap("bus-1", 2, "nfc:02", at(1, "07:05"))])  # a rider in debt
    gate_on = tap("gate-1", 1, "nfc:01", at(1, "08:00"))
    hold = await ledger.hold(gate_on, kzt(500), timedelta(hours=2))
    await ledger.complete(hold.key, "gate-1:1:off", kzt(300), at(1, "08:30"))
    await ledger.reverse("tap:bus-1:1", "reverse:bus-1:1", "double tap")
    assert await ledger.settle_due(RATER) == Settled(2)


async def test_the_rebuilds_keep_every_row_and_every_rule(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    try:
        ledger = await a_ledger_of_schema_4(store, monkeypatch, tmp_path)
        before = await snapshot(store)
        later = [step.version for step in migrations("sqlite")[4:]]
        assert await store.migrate() == later[-1]
        after = await snapshot(store)
        assert after["ledger_schema"] == [*before.pop("ledger_schema"), *((v,) for v in later)]
        assert {table: after[table] for table in before} == before
        assert await ledger.violations() == []
        for table in ("accounts", "transfers"):
            ((sql,),) = await rows(store, "SELECT sql FROM sqlite_schema WHERE name = ?", table)
            assert " IN (" not in str(sql)
        assert await rows(store, "PRAGMA foreign_keys") == [(1,)]
        # The rules hold as before: an unknown kind of transfer, an unknown account.
        first_row = f"SELECT {', '.join(TRANSFER_COLUMNS)} FROM transfers LIMIT 1"  # noqa: S608
        ((*first,),) = await rows(store, first_row)
        forged = dict(zip(TRANSFER_COLUMNS, first, strict=True))
        forged.update(key="gift:1", kind="gift", device=None, seq=None)
        insert = (
            f"INSERT INTO transfers ({', '.join(forged)}) VALUES ({', '.join('?' * len(forged))})"  # noqa: S608
        )
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            await rows(store, insert, *forged.values())
        stranger = tap("bus-1", 3, "nfc:03", at(2, "08:00"))
        with pytest.raises(UnknownAccountError):
            await ledger.post([fare_transfer(stranger, ALMATY)])
    finally:
        await store.close()


ORPHAN = """
CREATE TABLE scratch_parent (id INTEGER PRIMARY KEY);
CREATE TABLE scratch_child (parent INTEGER REFERENCES scratch_parent (id));
INSERT INTO scratch_child VALUES (7);
"""
BROKEN = """
CREATE TABLE scratch_parent (id INTEGER PRIMARY KEY);
INSERT INTO no_such_table VALUES (7);
"""


@pytest.mark.parametrize(
    ("sql", "error"),
    [(ORPHAN, "migration {} breaks foreign keys"), (BROKEN, "migration failed: no such table")],
)
async def test_a_failing_step_is_refused_and_leaves_nothing(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch, sql: str, error: str
) -> None:
    try:
        await store.migrate()
        ledger = Ledger(store, ALMATY, clock=Clock.at_ms(at(2, "09:00")))
        await ledger.top_up(top_up("nfc:01", 1000, "sms-1"))
        before = await snapshot(store)
        step = Migration(migrations("sqlite")[-1].version + 1, "scratch", sql)
        with monkeypatch.context() as patch:
            patch.setattr(sqlite_store, "migrations", lambda dialect: (*migrations(dialect), step))
            with pytest.raises(MigrationError, match=error.format(step.version)):
                await store.migrate()
        assert await snapshot(store) == before
        assert await rows(store, "SELECT name FROM sqlite_schema WHERE name LIKE 'scratch%'") == []
        assert await rows(store, "PRAGMA foreign_keys") == [(1,)]
        await ledger.top_up(top_up("nfc:01", 1000, "sms-2"))
    finally:
        await store.close()


@pytest.mark.parametrize("statement", [APPLY_BALANCES, MARK_FARE_DAYS])
async def test_a_posting_reads_only_the_rows_it_inserted(
    store: SqliteStore, statement: str
) -> None:
    """The statements that follow each insert find its rows by id, never by scanning the
    history (a closed day's transfers, say, through the fare_day index)."""
    try:
        await store.migrate()
        plan = await rows(store, f"EXPLAIN QUERY PLAN {statement}", 0)
        reads = [
            str(detail)
            for *_, detail in plan
            if " transfers" in str(detail) or " n " in str(detail)
        ]
        assert reads
        for detail in reads:
            assert "INTEGER PRIMARY KEY (rowid>?)" in detail or "(key=?)" in detail, plan
    finally:
        await store.close()


@pytest.mark.parametrize(
    "statement", [reads.DAY_CHARGED, reads.DAY_TAPS, f"SELECT {reads.DAY_EVENTS}"]
)
async def test_a_settlement_reads_only_its_riders_day(store: SqliteStore, statement: str) -> None:
    """What a settlement reads of one rider's day it finds through the account-day indexes
    (and transfers they name by key), never through the fare_day index: that would read
    the whole day's transfers for each rider settled."""
    try:
        await store.migrate()
        plan = await store.run(explain, statement, "rider:nfc:01", "2026-03-02")
        steps = [str(detail) for *_, detail in plan]
        searches = [
            step
            for step in steps
            if step.startswith(("SEARCH", "SCAN"))
            and not step.startswith(("SCAN moved", "SCAN CONSTANT"))
        ]
        assert searches
        for step in searches:
            assert any(f"{index} (" in step for index in ACCOUNT_DAY_READS), steps
    finally:
        await store.close()


async def test_expired_holds_are_found_by_their_timeout(store: SqliteStore) -> None:
    """Charging expired holds reads the pending transfers alone, not every transfer."""
    try:
        await store.migrate()
        plan = await store.run(explain, reads.EXPIRED_HOLDS, 0, 100)
        steps = [str(detail) for *_, detail in plan]
        assert steps[0] == "SEARCH t USING INDEX transfers_pending_timeout (timeout_ms<?)", steps
    finally:
        await store.close()


async def test_taps_per_minute_read_only_the_records_of_their_range(store: SqliteStore) -> None:
    """The report counts a day's records through their event-time index, not all records
    ever stored (a scan on the store's one thread, while uploads wait)."""
    try:
        await store.migrate()
        plan = await store.run(explain, reports.RECORDS_PER_MINUTE, 0, 86_400_000)
        steps = [str(detail) for *_, detail in plan]
        assert steps[0].startswith("SEARCH records USING COVERING INDEX records_event_time"), steps
    finally:
        await store.close()


async def test_stores_migrating_one_new_file_at_once_apply_each_step_once(
    tmp_path: Path,
) -> None:
    """Server processes started together on a new file: each step is applied once."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    stores = [await SqliteStore.open(url) for _ in range(4)]
    try:
        latest = migrations("sqlite")[-1].version
        assert await asyncio.gather(*(store.migrate() for store in stores)) == [latest] * 4
        versions = await rows(stores[0], "SELECT version FROM ledger_schema ORDER BY version")
        assert versions == [(step.version,) for step in migrations("sqlite")]
        await Ledger(stores[1], ALMATY).top_up(top_up("nfc:01", 1000, "sms-1"))
    finally:
        for store in stores:
            await store.close()


@pytest.mark.parametrize("limit", [32766, 100, 7])
def test_rows_go_in_by_few_statements_within_the_parameter_limit(
    tmp_path: Path, limit: int
) -> None:
    connection = sqlite3.connect(tmp_path / "rows.db", isolation_level=None)
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    connection.execute("CREATE TABLE pairs (n INTEGER, text TEXT)")
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    rows = [(n, f"row {n}") for n in range(1000)]
    sqlite_store._insert(connection, "pairs", ("n", "text"), rows)
    # 1000 rows = 3 x 256 + 128 + 64 + 32 + 8 with room for 256 rows in a statement; with
    # room for 50, 31 x 32 + 8; with room for 3, 500 x 2.
    assert len(statements) == {32766: 7, 100: 32, 7: 500}[limit]
    assert connection.execute("SELECT n, text FROM pairs ORDER BY rowid").fetchall() == rows
    connection.close()


async def test_a_new_file_another_store_is_converting_is_waited_for(tmp_path: Path) -> None:
    """Stores opening a new file at the same moment race to put it in WAL mode: while one
    holds the file's write lock, SQLite refuses the others' conversion at once, without
    its busy timeout. Here a connection holds the write lock of a new file for 0.3 s: the
    store opens once it is let go."""
    path = tmp_path / "ledger.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held until COMMIT
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        store = await SqliteStore.open(f"sqlite:///{path}")
        try:
            assert await store.call(lambda c: c.execute("PRAGMA journal_mode").fetchone()) == (
                "wal",
            )
        finally:
            await store.close()
    finally:
        release.join()
        holder.close()
