"""The server's clock over real HTTP on 127.0.0.1: a `Farebox-Server-Time` that cannot be
now is not believed, used or kept, so it can neither deny taps nor end the sync; an
offset kept by an older agent that cannot be right is not loaded; and a sync loop that
fails with any exception is started again, not lost."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from farebox.agent.runtime import wall_ms
from farebox.agent.store.state import Store
from farebox.agent.sync.client import DeviceClient
from farebox.agent.sync.enrollment import KEY_FILE
from farebox.agent.sync.report import read_sync_report
from farebox.protocol.keyfile import load_key
from farebox.protocol.records import MAX_TIME_MS, Reason
from tests.agent.builders import card
from tests.agent.harness import agent_config, start_agent, until
from tests.agent.sync.conftest import DEVICE, Validator
from tests.agent.sync.server import SyncServer

YEAR_MS = 365 * 86_400_000
BATCHES = "/v1/batches"


def keep_offset(database: Path, value: str) -> None:
    """Write a clock offset as an agent from before offsets were bounded could have."""
    conn = sqlite3.connect(database)
    try:
        with conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('clock_offset_ms', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (value,),
            )
    finally:
        conn.close()


@pytest.mark.parametrize(
    "skew_ms",
    [
        pytest.param(10**20, id="past-2**64"),
        pytest.param(2**63, id="past-2**63"),
        pytest.param(MAX_TIME_MS + 1 - wall_ms(), id="past-the-protocol-bound"),
        pytest.param(200 * YEAR_MS, id="two-centuries-ahead"),
        pytest.param(-wall_ms() + 1000, id="1970"),
    ],
)
async def test_a_server_time_that_cannot_be_now_is_not_believed(
    server: SyncServer, validator: Validator, skew_ms: int, caplog: pytest.LogCaptureFixture
) -> None:
    kept = await validator.on_store(validator.store.clock_offset_ms)  # from the enrollment
    server.skew_ms = skew_ms  # the server judges requests by that clock too: all are stale
    await validator.taps(3)
    with caplog.at_level(logging.WARNING, "farebox.agent.sync"):
        task = validator.start()
        await until(lambda: len(server.posts(BATCHES)) >= 3)
    assert not task.done()  # retried, not killed
    assert validator.offsets == []  # the runtime never judged a tap by it
    assert await validator.on_store(validator.store.clock_offset_ms) == kept
    assert any("cannot be now" in r.getMessage() for r in caplog.records)
    server.skew_ms = 0  # the server's clock is set right
    await until(lambda: validator.store.acked.seq == 3)
    await validator.halt()
    assert validator.offsets
    assert all(abs(offset) < 1000 for offset in validator.offsets)


async def test_a_kept_offset_that_cannot_be_right_is_not_loaded_by_the_sync(
    server: SyncServer, validator: Validator
) -> None:
    keep_offset(validator.directory / "agent.db", str(10**20))
    assert await validator.on_store(validator.store.clock_offset_ms) is None
    await validator.taps(3)
    validator.start()
    await until(lambda: validator.store.acked.seq == 3)
    await validator.halt()
    held = await validator.on_store(validator.store.clock_offset_ms)
    assert held is not None
    assert abs(held) < 1000  # measured again and kept in its place


async def test_a_kept_offset_that_cannot_be_right_does_not_deny_taps(tmp_path: Path) -> None:
    config = agent_config(tmp_path, policy={"clock": "deny"})
    Store.open(config.state.database, config.device_id, lock_timeout_ms=1000).close()
    keep_offset(config.state.database, str(2**63))
    agent = await start_agent(config)
    agent.reader.feed([card(b"\x0a\x0b\x0c\x0d")])
    await until(lambda: agent.runtime.taps_handled == 1)
    await agent.shutdown()
    assert [t.reason for t in agent.feedback.taps] == [Reason.NO_TARIFF]  # not clock_unset


async def test_a_clock_that_jumped_back_past_its_offset_still_signs(
    server: SyncServer, validator: Validator
) -> None:
    # Measured while our clock ran 60 years ahead; now it is right, and time + offset < 0.
    measured: list[int] = []

    async def keep(offset_ms: int) -> None:
        measured.append(offset_ms)

    key = load_key(validator.directory / KEY_FILE)
    async with aiohttp.ClientSession() as session:
        client = DeviceClient(
            session,
            validator.enrolled.server,
            DEVICE,
            key,
            clock=wall_ms,
            offset_ms=-60 * YEAR_MS,
            on_offset=keep,
        )
        answer = await client.request("GET", "/v1/package-keys")
    assert answer.status == 200
    assert len(measured) == 1
    assert abs(measured[0]) < 1000


async def test_a_sync_loop_that_fails_with_any_exception_is_started_again(
    server: SyncServer, validator: Validator, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def readers() -> dict[str, str]:
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("a bug in reading the readers' health")
        return {"nfc-0": "ready"}

    service = validator.service()
    service.readers = readers
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, "farebox.agent.sync"):
        task = asyncio.create_task(service.run(stop))
        await until(lambda: len(server.heartbeats) > 0)
    assert not task.done()
    assert any("starting it again" in r.getMessage() for r in caplog.records)
    report = read_sync_report(validator.directory) or {}
    assert "TypeError" in str(report["last_error"])
    stop.set()
    await asyncio.wait_for(task, 10)
