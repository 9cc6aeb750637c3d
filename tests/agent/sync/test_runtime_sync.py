"""The sync as the `run` command starts it, beside the runtime: taps decided offline are
uploaded in the background, and a stop (what SIGTERM sets) in the middle of an upload
loses nothing. Sync windows keep the sync quiet outside them."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farebox.agent.cli import build_sync
from farebox.agent.runtime import Runtime
from farebox.agent.store.state import Store
from farebox.agent.sync import context as sync_context
from farebox.agent.sync.enroll import enroll
from tests.agent.builders import card
from tests.agent.harness import ListReader, Recorder, agent_config, until
from tests.agent.sync.conftest import DEVICE, Validator, windows
from tests.agent.sync.server import SyncServer

FAST: dict[str, object] = {
    "flush_interval_s": 0.05,
    "package_poll_s": 0.2,
    "heartbeat_s": 0.2,
    "retry_initial_s": 0.02,
    "retry_max_s": 0.1,
    "request_timeout_s": 10,
}


async def start(
    tmp_path: Path, stop: asyncio.Event
) -> tuple[Runtime, ListReader, asyncio.Task[None]]:
    """A runtime with its sync, as `farebox-agent run` builds them."""
    config = agent_config(tmp_path, sync=FAST)
    store = Store.open(config.state.database, config.device_id, lock_timeout_ms=1000)
    reader = ListReader()
    runtime = Runtime(config, store, [reader], Recorder(config.state.database))
    sync = build_sync(config, store, runtime)
    assert sync is not None
    task = asyncio.create_task(runtime.run(stop, [sync.run]))
    await asyncio.wait_for(runtime.wait_ready(), 10)
    return runtime, reader, task


async def test_taps_upload_in_the_background_and_a_stop_mid_upload_loses_nothing(
    tmp_path: Path, server: SyncServer, base_url: str
) -> None:
    await asyncio.to_thread(enroll, base_url, "t-1", tmp_path)
    server.hold = asyncio.Event()  # the server stores the first batch but does not answer
    stop = asyncio.Event()
    runtime, reader, task = await start(tmp_path, stop)
    reader.feed(card(i.to_bytes(7, "big")) for i in range(20))
    await until(lambda: runtime.taps_handled == 20)
    await until(lambda: len(server.stored) > 0)
    stop.set()  # SIGTERM with an upload in flight
    await asyncio.wait_for(task, 10)
    store = Store.open(tmp_path / "agent.db", DEVICE, lock_timeout_ms=1000)
    try:
        figures = store.figures()
        assert (figures.acked_seq, figures.kept) == (0, 21)  # boot + 20 taps, none acked
    finally:
        store.close()
    server.hold.set()
    server.hold = None
    stop = asyncio.Event()
    runtime, reader, task = await start(tmp_path, stop)  # records a second boot: seq 22
    await until(lambda: runtime.store.acked.seq == 22)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert all(server.stored[DEVICE, seq] == 1 for seq in range(1, 23))
    assert len(server.stored) == 22


async def test_nothing_is_sent_outside_the_sync_windows(
    server: SyncServer, validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_context, "WINDOW_CHECK_S", 0.05)
    now = [datetime(2026, 11, 26, 12, 0, tzinfo=UTC)]
    validator.local_time = lambda: now[0]
    validator.config = dataclasses.replace(validator.config, windows=windows("22:00-06:00"))
    await validator.taps(5)
    validator.start()
    await asyncio.sleep(0.5)
    assert [p for _, p, _ in server.requests] == ["/v1/enroll"]
    now[0] = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)  # the bus is back at the depot
    await until(lambda: validator.store.acked.seq == 5)
    await until(lambda: len(server.heartbeats) > 0)
    await validator.halt()
