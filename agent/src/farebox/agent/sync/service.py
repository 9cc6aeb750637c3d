"""The sync service: the uploader, downloader and heartbeat of one enrolled validator.

Started by the runtime as a background task once the device is enrolled; it stops when
the runtime's stop event is set (SIGTERM), or by itself when the server refuses the
device (unknown, revoked). An upload cut short by a stop loses nothing: the records stay
unacknowledged in the journal and go again at the next start, where the server answers
them with the same ack. A loop that fails unexpectedly, with any exception at all, is
logged, noted in `status` and started again after `retry_max_s`: a bug in the sync never
takes the validator out of service, and never ends the sync unseen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from farebox.agent.errors import DeviceRefusedError, StoreError
from farebox.agent.store.state import Store
from farebox.agent.sync.client import DeviceClient
from farebox.agent.sync.context import OnStore, SyncContext
from farebox.agent.sync.download import DownloadLoop
from farebox.agent.sync.enrollment import EnrolledDevice, PackageKeys
from farebox.agent.sync.heartbeat import HeartbeatLoop
from farebox.agent.sync.report import Reporter
from farebox.agent.sync.settings import SyncConfig
from farebox.agent.sync.upload import UploadLoop
from farebox.protocol.keys import SigningKey

log = logging.getLogger(__name__)
# A measured offset is written to the journal only when it moved by more than this, so
# that the SD card does not take a write for every answer's few milliseconds of jitter.
OFFSET_WRITE_MS = 250


def local_now() -> datetime:
    return datetime.now(UTC).astimezone()


class SyncService:
    """Everything a running validator does with the server, in the background."""

    def __init__(
        self,
        config: SyncConfig,
        enrolled: EnrolledDevice,
        key: SigningKey,
        store: Store,
        on_store: OnStore,
        directory: Path,
        *,
        readers: Callable[[], Mapping[str, str]],
        on_offset: Callable[[int], None],
        clock: Callable[[], int],
        local_time: Callable[[], datetime] = local_now,
    ) -> None:
        self.config = config
        self.enrolled = enrolled
        self.key = key
        self.store = store
        self.on_store = on_store
        self.directory = directory
        self.readers = readers
        self.on_offset = on_offset
        self.clock = clock
        self.local_time = local_time
        self.server = config.server or enrolled.server
        self._stored_offset: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until `stop` is set or the server refuses the device."""
        reporter = Reporter(self.directory, self.server, self.clock)
        try:
            self._stored_offset = await self.on_store(self.store.clock_offset_ms)
        except StoreError as error:
            log.warning("clock offset unknown until the server answers: %s", error)
        timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            client = DeviceClient(
                session,
                self.server,
                self.store.device,
                self.key,
                clock=self.clock,
                offset_ms=self._stored_offset or 0,
                on_offset=self._measured,
            )
            context = SyncContext(
                self.config,
                client,
                self.store,
                self.on_store,
                reporter,
                clock=self.clock,
                local_time=self.local_time,
            )
            loops = (
                UploadLoop(context, self.key).run,
                DownloadLoop(context, PackageKeys(self.directory, self.enrolled)).run,
                HeartbeatLoop(context, self.directory, self.readers).run,
            )
            log.info("sync with %s started", self.server)
            stopper = asyncio.create_task(_relay(stop, context.done))
            try:
                await asyncio.gather(*(_guarded(context, loop) for loop in loops))
            finally:
                stopper.cancel()
                reporter.stopped()

    async def _measured(self, offset_ms: int) -> None:
        self.on_offset(offset_ms)
        stored = self._stored_offset
        if stored is not None and abs(offset_ms - stored) <= OFFSET_WRITE_MS:
            return
        try:
            await self.on_store(self.store.set_clock_offset_ms, offset_ms)
            self._stored_offset = offset_ms
        except StoreError as error:
            log.warning("cannot store the clock offset: %s", error)


async def _relay(stop: asyncio.Event, done: asyncio.Event) -> None:
    await stop.wait()
    done.set()


async def _guarded(context: SyncContext, loop: Callable[[], Awaitable[None]]) -> None:
    """Run one sync loop; stop everything on a refusal, restart it after anything else."""
    while not context.stopping:
        try:
            await loop()
            return
        except DeviceRefusedError as error:
            context.refuse(error)
        except Exception as error:  # any bug: it must not end the sync unseen
            log.exception("sync loop failed; starting it again")
            context.reporter.error(f"{type(error).__name__}: {error}")
            await context.pause(context.config.retry_max_s)
