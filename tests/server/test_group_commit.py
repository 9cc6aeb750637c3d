"""The SQLite store's group commit: transactions that wait together share one commit, and
each caller still gets its own outcome."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from farebox.server.errors import IdempotencyConflictError, StoreError
from farebox.server.ledger import sqlite_store
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.sqlite_store import SqliteStore
from farebox.server.ledger.store import Session
from tests.server.conftest import ALMATY
from tests.server.helpers import kzt, top_up


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/ledger.db")
    await store.migrate()
    yield store
    await store.close()


async def statements(store: SqliteStore) -> list[str]:
    """The SQL the connection runs from now on, as SQLite traces it."""
    seen: list[str] = []
    await store.call(lambda c: c.set_trace_callback(seen.append))
    return seen


async def test_waiting_transactions_share_one_commit_and_keep_their_own_outcome(
    store: SqliteStore,
) -> None:
    ledger = Ledger(store, ALMATY)
    await ledger.top_up(top_up("nfc:01", 100, "pay-0"))
    seen = await statements(store)
    outcomes = await asyncio.gather(
        *(ledger.top_up(top_up(f"nfc:{n:02d}", 100, f"pay-{n}")) for n in range(1, 9)),
        ledger.top_up(top_up("nfc:99", 700, "pay-0")),  # the key of another payment
        return_exceptions=True,
    )
    assert isinstance(outcomes[-1], IdempotencyConflictError)
    assert all(not isinstance(outcome, BaseException) for outcome in outcomes[:-1])
    assert seen.count("COMMIT") < len(outcomes)
    for n in range(1, 9):
        state = await ledger.account(f"rider:nfc:{n:02d}")
        assert state is not None
        assert state.balance == kzt(200 if n == 1 else 100)
    assert await ledger.account("rider:nfc:99") is None
    assert await ledger.violations() == []


async def test_a_job_that_ends_the_whole_transaction_sends_the_others_round_again(
    store: SqliteStore,
) -> None:
    """SQLite rolls a whole transaction back on some errors (a full disk): the jobs that
    shared it must not be lost, nor answered as if committed."""
    ledger = Ledger(store, ALMATY)

    async def break_the_transaction(session: Session) -> None:
        await session.execute("ROLLBACK")
        raise OSError("the disk is full")

    outcomes = await asyncio.gather(
        ledger.top_up(top_up("nfc:01", 100, "pay-1")),
        store.run(break_the_transaction),
        ledger.top_up(top_up("nfc:02", 100, "pay-2")),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], OSError)
    for token in ("nfc:01", "nfc:02"):
        state = await ledger.account(f"rider:{token}")
        assert state is not None
        assert state.balance == kzt(100)


async def test_a_caller_that_stopped_waiting_is_skipped(store: SqliteStore) -> None:
    ledger = Ledger(store, ALMATY)
    release = threading.Event()

    async def slow(session: Session) -> None:
        release.wait(timeout=10)  # holds the store's thread, as a long statement would

    first = asyncio.create_task(store.run(slow))
    await asyncio.sleep(0)
    abandoned = asyncio.create_task(ledger.top_up(top_up("nfc:01", 100, "pay-1")))
    await asyncio.sleep(0.05)
    abandoned.cancel()
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert await ledger.account("rider:nfc:01") is None


async def test_a_closed_store_refuses_work_instead_of_hanging(tmp_path: Path) -> None:
    store = await SqliteStore.open(f"sqlite:///{tmp_path}/ledger.db")
    await store.migrate()
    await store.close()
    ledger = Ledger(store, ALMATY)
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(ledger.top_up(top_up("nfc:01", 100, "pay-1")), timeout=5)


async def test_a_job_that_waits_for_anything_but_its_session_is_refused(
    store: SqliteStore,
) -> None:
    """A job runs start to end on the store's thread: it cannot wait for the event loop,
    and what it wrote before it tried is undone."""
    ledger = Ledger(store, ALMATY)
    await ledger.top_up(top_up("nfc:01", 100, "pay-1"))

    async def waits_for_the_loop(session: Session) -> None:
        await session.execute("UPDATE accounts SET credit_limit = 500 WHERE kind = 'rider'")
        await asyncio.sleep(0)

    with pytest.raises(StoreError, match="awaited something other than its session"):
        await store.run(waits_for_the_loop)
    limits = await store.call(lambda c: c.execute("SELECT credit_limit FROM accounts").fetchall())
    assert {limit for (limit,) in limits} == {0}
    await ledger.top_up(top_up("nfc:01", 100, "pay-2"))
    assert await ledger.violations() == []


async def test_closing_finishes_the_transactions_already_asked_for(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = await SqliteStore.open(url)
    await store.migrate()
    ledger = Ledger(store, ALMATY)
    asked = [
        asyncio.create_task(ledger.top_up(top_up(f"nfc:{n:02d}", 100, f"pay-{n}")))
        for n in range(20)
    ]
    await asyncio.sleep(0)  # every top-up is queued, none answered yet
    await store.close()
    assert all(receipt.fresh for receipt in await asyncio.gather(*asked))
    reopened = await SqliteStore.open(url)
    try:
        assert await Ledger(reopened, ALMATY).violations() == []
        count = await reopened.call(
            lambda c: c.execute("SELECT count(*) FROM transfers").fetchone()
        )
        assert count == (20,)
    finally:
        await reopened.close()


async def test_after_a_shared_commit_the_next_group_gathers_and_closing_cuts_it_short(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load the next group waits a moment for company; a closing store does not."""
    monkeypatch.setattr(sqlite_store, "GATHER_S", 60.0)
    ledger = Ledger(store, ALMATY)
    # The first top-up starts a transaction alone; the three that queue behind it share
    # the next one, after which the store gathers before it starts another.
    await asyncio.gather(
        *(ledger.top_up(top_up(f"nfc:{n:02d}", 100, f"pay-{n}")) for n in range(4))
    )
    late = asyncio.create_task(ledger.top_up(top_up("nfc:99", 100, "pay-99")))
    await asyncio.sleep(0.05)
    assert not late.done()
    await asyncio.wait_for(store.close(), timeout=5)
    assert (await late).fresh


async def test_writers_of_one_file_take_turns_through_the_lock_file_beside_it(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Another writer holding the turn (here the test, as another process would) makes the
    store wait for it; the store writes once the turn is let go."""
    ledger = Ledger(store, ALMATY)
    turns = os.open(tmp_path / "ledger.db-writer", os.O_RDONLY)
    try:
        fcntl.flock(turns, fcntl.LOCK_EX)
        posting = asyncio.ensure_future(ledger.top_up(top_up("nfc:01", 100, "pay-1")))
        await asyncio.sleep(0.3)
        assert not posting.done()
        fcntl.flock(turns, fcntl.LOCK_UN)
        await asyncio.wait_for(posting, 5)
    finally:
        os.close(turns)
    state = await ledger.account("rider:nfc:01")
    assert state is not None
    assert state.balance == kzt(100)


async def test_an_in_memory_store_has_no_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a file named after ":memory:" would appear
    store = await SqliteStore.open("sqlite:///:memory:")
    try:
        await store.migrate()
        assert await Ledger(store, ALMATY).top_up(top_up("nfc:01", 100, "pay-1"))
    finally:
        await store.close()
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


async def test_a_store_that_cannot_make_its_lock_file_does_not_open(tmp_path: Path) -> None:
    (tmp_path / "ledger.db-writer").mkdir()  # a directory where the lock file would go
    with pytest.raises(StoreError, match="cannot open"):
        await SqliteStore.open(f"sqlite:///{tmp_path}/ledger.db")
