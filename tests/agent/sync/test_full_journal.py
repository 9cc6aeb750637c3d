"""A full journal with the default retention, on a real size-capped SQLite file
(state.max_size_mb): acknowledged records make way at once, however recent, so the
validator is out of service only while the journal is full of records the server does
not hold, and back within a probe interval of the acknowledgement that frees it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from farebox.agent.cli import build_sync
from farebox.agent.errors import JournalUnavailableError
from farebox.agent.runtime import Runtime, Service
from farebox.agent.store.state import Store
from farebox.agent.sync.enroll import enroll
from farebox.protocol.chain import Cursor
from farebox.protocol.records import ClockState
from tests.agent.builders import card
from tests.agent.harness import ListReader, Recorder, agent_config, until
from tests.agent.sync.conftest import DEVICE
from tests.agent.sync.server import SyncServer
from tests.support.records import MORNING_MS, ROUTE_12, accepted_tap

CAP_BYTES = 256 * 1024
BATCHES = "/v1/batches"


def fill(store: Store, start: int, every_ms: int = 1000) -> int:
    """Record taps `every_ms` apart until the journal refuses one; the count recorded."""
    count = 0
    try:
        while True:
            at = MORNING_MS + (start + count) * every_ms
            store.record(at, ClockState.SYNCED, ROUTE_12, accepted_tap(), remember=True)
            count += 1
    except JournalUnavailableError:
        return count


def test_acknowledged_records_make_way_for_taps_in_a_full_journal(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "agent.db", DEVICE, lock_timeout_ms=200, max_size_bytes=CAP_BYTES)
    try:
        first = fill(store, 0)
        assert first > 100
        # The server acknowledges half, minutes ago: far inside the 7 days of retention.
        half = store.pending(first)[first // 2 - 1]
        store.acknowledge(Cursor(half.record.seq, half.digest), MORNING_MS + first * 1000)
        more = fill(store, first)
        assert more > first // 4  # the acknowledged half made way (history stays)
        head, acked = store.cursor.seq, store.acked.seq
        assert (head, acked) == (first + more, first // 2)
        # Every record the server does not hold is kept, in order, and the chain verifies.
        assert [e.record.seq for e in store.pending(10_000)] == list(range(acked + 1, head + 1))
        assert store.figures().kept == head - acked
        assert store.verify().seq == head
    finally:
        store.close()


def test_rider_history_but_the_last_day_makes_way_when_no_record_can(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "agent.db", DEVICE, lock_timeout_ms=200, max_size_bytes=CAP_BYTES)
    try:
        taken, start = [], 0
        for _ in range(5):  # a busy turnstile: taps ten minutes apart, days of them
            taken.append(fill(store, start, every_ms=600_000))
            start += taken[-1]
            store.acknowledge(store.cursor, MORNING_MS)  # the server holds every record
        assert min(taken) > taken[0] // 2  # history did not crowd the journal out
        newest = MORNING_MS + (start - 1) * 600_000
        recent = store.recent(accepted_tap().token, newest - 86_400_000)
        assert len(recent) > 100  # the last day's history is kept
    finally:
        store.close()


async def test_a_full_journal_is_back_in_service_once_the_server_acknowledges_it(
    tmp_path: Path, server: SyncServer, base_url: str
) -> None:
    await asyncio.to_thread(enroll, base_url, "t-1", tmp_path)
    server.fail(BATCHES, *[(503, "storage_full")] * 100_000)  # the server's store is full
    config = agent_config(
        tmp_path,
        state={"max_size_mb": CAP_BYTES / 2**20},  # state.retention_days: the default, 7
        sync={"flush_interval_s": 0.05, "retry_initial_s": 0.02, "retry_max_s": 0.1},
    )
    assert config.state.retention_ms == 7 * 86_400_000
    store = Store.open(
        config.state.database,
        DEVICE,
        lock_timeout_ms=1000,
        max_size_bytes=config.state.max_size_bytes,
    )
    reader = ListReader()
    runtime = Runtime(config, store, [reader], Recorder(config.state.database))
    sync = build_sync(config, store, runtime)
    assert sync is not None
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop, [sync.run]))
    await asyncio.wait_for(runtime.wait_ready(), 10)
    batch = 0
    while runtime.service is Service.IN_SERVICE:
        assert batch < 100, "the journal never filled"
        reader.feed(card((batch * 50 + i).to_bytes(7, "big")) for i in range(50))
        batch += 1
        target = 50 * batch
        await until(
            lambda: runtime.taps_handled >= target or runtime.service is not Service.IN_SERVICE  # noqa: B023 (awaited at once)
        )
    assert runtime.service is Service.OUT_OF_SERVICE
    assert not server.stored
    head = store.cursor.seq
    server.faults.clear()  # the server has room again and acknowledges everything
    # The first acknowledgement may free enough room for service; the rest follow.
    await until(lambda: runtime.service is Service.IN_SERVICE and store.acked.seq >= head)
    before = runtime.taps_handled
    reader.feed([card(b"\xdd\xdd\xdd\xdd")])
    await until(lambda: runtime.taps_handled == before + 1)
    await until(lambda: store.acked.seq == store.cursor.seq)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert all(server.stored[DEVICE, seq] == 1 for seq in range(1, head + 2))
    reopened = Store.open(config.state.database, DEVICE, lock_timeout_ms=1000)
    try:
        assert reopened.verify().seq == head + 1
    finally:
        reopened.close()
