"""Run a reader adapter against a real event loop and collect what it hands over."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from farebox.agent.readers.base import Health, HealthState, ReaderEvent, ThreadedReader


class Collector:
    """Events from one reader, with the thread each was delivered on."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[ReaderEvent] = asyncio.Queue()
        self.threads: set[int] = set()

    def __call__(self, event: ReaderEvent) -> None:
        self.threads.add(threading.get_ident())
        self.queue.put_nowait(event)

    async def next(self, within: float = 5.0) -> ReaderEvent:
        return await asyncio.wait_for(self.queue.get(), within)


async def wait_for_health(
    reader: ThreadedReader, state: HealthState, within: float = 5.0
) -> Health:
    deadline = time.monotonic() + within
    while reader.health.state is not state:
        if time.monotonic() > deadline:
            raise AssertionError(f"reader health stayed {reader.health}, wanted {state}")
        await asyncio.sleep(0.01)
    return reader.health


@pytest.fixture
async def run_reader() -> AsyncIterator[Callable[[ThreadedReader], Collector]]:
    started: list[ThreadedReader] = []

    def run(reader: ThreadedReader) -> Collector:
        collector = Collector()
        reader.start(asyncio.get_running_loop(), collector)
        started.append(reader)
        return collector

    yield run
    for reader in started:
        assert reader.stop(), f"reader {reader.reader_id} did not stop in time"
