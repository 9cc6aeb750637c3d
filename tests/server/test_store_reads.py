"""Reads beside the writers: a report over a day's taps does not hold up the uploads.

On SQLite a read runs on a connection and thread of its own that may only read; WAL lets
it see one moment of the store while a writer (another process here) holds the write
lock. On PostgreSQL a read is a transaction like any other, which no writer waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from farebox.server.errors import StoreError
from farebox.server.ledger.store import Session, open_store


def files_in(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir()]


def open_under(folder: Path) -> list[str]:
    """The files under `folder` this process holds open."""
    found = []
    for descriptor in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            target = str(descriptor.readlink())
            if target.startswith(str(folder)):
                found.append(target)
    return found


async def stoplist_version(session: Session) -> int:
    ((version,),) = await session.fetch("SELECT version FROM stoplist_head")
    return int(version)


async def writes_anyway(session: Session) -> None:
    await session.execute("UPDATE stoplist_head SET version = version + 1")


async def test_a_read_goes_on_while_another_process_writes(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    writer = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        await store.migrate()
        writer.execute("BEGIN IMMEDIATE")  # another server process, mid-transaction
        writer.execute("UPDATE stoplist_head SET version = 7")
        started = time.monotonic()
        assert await asyncio.wait_for(store.read(stoplist_version), 5) == 0  # not yet his
        assert time.monotonic() - started < 1  # no wait for the write lock
        writer.execute("COMMIT")
        assert await store.read(stoplist_version) == 7
    finally:
        writer.close()
        await store.close()


async def test_a_read_may_not_write(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        await store.migrate()
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await store.read(writes_anyway)
        assert await store.read(stoplist_version) == 0
    finally:
        await store.close()


async def test_a_store_in_memory_reads_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a file named after ":memory:" would appear
    store = await open_store("sqlite:///:memory:")
    try:
        await store.migrate()
        await store.run(writes_anyway)
        assert await store.read(stoplist_version) == 1
    finally:
        await store.close()
    assert files_in(tmp_path) == []  # the reads opened no file named ":memory:"


async def test_reads_asked_for_before_close_finish_and_leave_no_file_open(
    tmp_path: Path,
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    await store.migrate()
    asked = [asyncio.ensure_future(store.read(stoplist_version)) for _ in range(3)]
    await asyncio.sleep(0)  # each is on the reader's thread, or queued for it
    await store.close()
    assert await asyncio.gather(*asked) == [0, 0, 0]
    with pytest.raises(StoreError, match="closed"):
        await store.read(stoplist_version)
    assert open_under(tmp_path) == []
