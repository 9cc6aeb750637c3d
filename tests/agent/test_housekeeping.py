"""Housekeeping forgets used QR tickets, riders' history and acknowledged records once a
sync has found the clock right: a clock a year fast at boot forgets nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from farebox.agent import runtime as runtime_module
from farebox.agent.runtime import Runtime
from farebox.agent.store.history import TicketUse
from farebox.agent.store.state import Store
from farebox.protocol.records import ClockState
from tests.agent.builders import MORNING_MS
from tests.agent.harness import ListReader, Recorder, agent_config
from tests.support.records import ROUTE_12, accepted_tap

YEAR_MS = 365 * 86_400_000
TICKET = TicketUse(b"single-ride-0001", MORNING_MS + 86_400_000)  # valid until tomorrow


@contextlib.asynccontextmanager
async def a_validator_at(tmp_path: Path, now_ms: int) -> AsyncIterator[tuple[Runtime, Store]]:
    """A validator whose clock reads `now_ms`, holding a ticket used at MORNING_MS; the
    sync has not answered yet."""
    config = agent_config(tmp_path)
    store = Store.open(config.state.database, config.device_id, lock_timeout_ms=500)
    store.record(MORNING_MS, ClockState.SYNCED, ROUTE_12, accepted_tap(), ticket=TICKET)
    runtime = Runtime(
        config, store, [ListReader()], Recorder(config.state.database), clock=lambda: now_ms
    )
    runtime.expect_server_time()
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await asyncio.wait_for(runtime.wait_ready(), 10)
        yield runtime, store
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_clock_days_slow_forgets_nothing_by_the_server_s_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "HOUSEKEEPING_S", 0.02)
    async with a_validator_at(tmp_path, MORNING_MS + 600_000) as (runtime, store):
        runtime.clock_measured(10 * 86_400_000)  # the server: ten days later
        await asyncio.sleep(0.2)
        assert await runtime.on_store(store.ticket_uses, TICKET.ticket_id) == 1


async def test_a_clock_a_year_fast_at_boot_forgets_no_used_ticket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "HOUSEKEEPING_S", 0.02)
    async with a_validator_at(tmp_path, MORNING_MS + YEAR_MS) as (runtime, store):
        await asyncio.sleep(0.2)  # housekeeping's turns, waiting for the server's time
        assert await runtime.on_store(store.ticket_uses, TICKET.ticket_id) == 1
        runtime.clock_measured(-YEAR_MS + 600_000)  # the server: a year less ten minutes
        await asyncio.sleep(0.2)
        assert await runtime.on_store(store.ticket_uses, TICKET.ticket_id) == 1
        runtime.clock_measured(0)  # the server agrees: a year later, the ticket expired
        await asyncio.sleep(0.2)
        assert await runtime.on_store(store.ticket_uses, TICKET.ticket_id) == 0
