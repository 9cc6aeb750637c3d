"""Fixtures for the sync tests: a test server on 127.0.0.1, an enrolled device, a running
sync with small intervals so that backoff and polling are seen within a second."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from farebox.agent.runtime import wall_ms
from farebox.agent.store.state import Store
from farebox.agent.sync.enroll import enroll
from farebox.agent.sync.enrollment import KEY_FILE, EnrolledDevice
from farebox.agent.sync.service import SyncService
from farebox.agent.sync.settings import SyncConfig
from farebox.agent.sync.windows import SyncWindows
from farebox.protocol.keyfile import load_key
from farebox.protocol.records import ClockState, EncodedRecord
from tests.agent.sync.server import SyncServer, serving
from tests.support.records import MORNING_MS, ROUTE_12, accepted_tap

T = TypeVar("T")
DEVICE = "bus-017"
FAST = SyncConfig(
    flush_interval_s=0.05,
    batch_size=1000,
    max_batch_records=50,
    package_poll_s=0.1,
    heartbeat_s=0.2,
    request_timeout_s=2.0,
    retry_initial_s=0.02,
    retry_max_s=0.1,
)


@pytest.fixture
def server() -> SyncServer:
    return SyncServer(tokens={"t-1": DEVICE})


@pytest.fixture
async def base_url(server: SyncServer) -> AsyncIterator[str]:
    async with serving(server) as url:
        yield url


@dataclass
class Validator:
    """An enrolled device's store and key, its store thread, and the sync run over them."""

    directory: Path
    enrolled: EnrolledDevice
    store: Store
    executor: ThreadPoolExecutor
    config: SyncConfig = FAST
    offsets: list[int] | None = None
    local_time: Callable[[], datetime] = lambda: datetime.now(UTC)
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event | None = None

    async def on_store(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def taps(self, count: int) -> list[EncodedRecord]:
        def record() -> list[EncodedRecord]:
            return [
                self.store.record(MORNING_MS + i, ClockState.SYNCED, ROUTE_12, accepted_tap())
                for i in range(count)
            ]

        return await self.on_store(record)

    def service(self) -> SyncService:
        self.offsets = []
        return SyncService(
            self.config,
            self.enrolled,
            load_key(self.directory / KEY_FILE),
            self.store,
            self.on_store,
            self.directory,
            readers=lambda: {"nfc-0": "ready"},
            on_offset=self.offsets.append,
            clock=wall_ms,
            local_time=self.local_time,
        )

    def start(self) -> asyncio.Task[None]:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.service().run(self.stop))
        return self.task

    async def halt(self) -> None:
        """Stop the sync as SIGTERM would, within a bound."""
        if self.task is not None and self.stop is not None:
            self.stop.set()
            await asyncio.wait_for(self.task, 10)

    async def acked(self) -> int:
        return await self.on_store(lambda: self.store.acked.seq)


@pytest.fixture
async def validator(tmp_path: Path, base_url: str) -> AsyncIterator[Validator]:
    enrolled = await asyncio.to_thread(enroll, base_url, "t-1", tmp_path)
    store = Store.open(tmp_path / "agent.db", enrolled.device, lock_timeout_ms=1000)
    executor = ThreadPoolExecutor(1, thread_name_prefix="store")
    held = Validator(tmp_path, enrolled, store, executor)
    try:
        yield held
    finally:
        if held.task is not None and not held.task.done():
            held.task.cancel()
            await asyncio.gather(held.task, return_exceptions=True)
        await held.on_store(store.close)
        executor.shutdown(wait=True)


def windows(*texts: str) -> SyncWindows:
    return SyncWindows.parse(texts)
