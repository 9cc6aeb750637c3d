"""The heartbeat: the validator's health, sent every `heartbeat_s` while a window is open.

Versions in force, journal depth and the time of the oldest unsynced record, the clock
offset, free disk and each reader's state: what an operator needs to see a bus that has
stopped syncing or is about to fill its card, without waiting for its batches.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from farebox.agent.errors import ServerRejectedError, ServerUnavailableError
from farebox.agent.store.state import Store
from farebox.agent.sync.context import SyncContext
from farebox.protocol.heartbeat import Heartbeat, encode_heartbeat
from farebox.protocol.packages import PackageKind

log = logging.getLogger(__name__)
HEARTBEAT_PATH = "/v1/heartbeat"
HEARTBEATS = "heartbeats"
"""The heartbeats' errors and answers, for `status` (see `Reporter.answered`)."""


class HeartbeatLoop:
    def __init__(
        self, context: SyncContext, directory: Path, readers: Callable[[], Mapping[str, str]]
    ) -> None:
        self.context = context
        self.directory = directory
        self.readers = readers

    async def run(self) -> None:
        context = self.context
        while await context.wait_window():
            try:
                await self.beat()
            except (ServerRejectedError, ServerUnavailableError) as error:
                log.warning("heartbeat not sent: %s", error)
                context.reporter.error(f"heartbeat: {error}", HEARTBEATS)
            await context.pause(context.config.heartbeat_s)

    async def beat(self) -> None:
        context = self.context
        readers = dict(self.readers())  # reader health is read on the event loop's thread
        heartbeat = await context.on_store(self.gather, context.store, readers)
        body = encode_heartbeat(heartbeat)
        request = partial(context.client.request, "POST", HEARTBEAT_PATH, body)
        answer = await context.call(request, HEARTBEATS)
        if answer.status != 204:
            raise ServerRejectedError(f"POST {HEARTBEAT_PATH} answered {answer.status}")

    def gather(self, store: Store, readers: Mapping[str, str]) -> Heartbeat:
        """On the store thread: the figures a heartbeat carries."""
        figures = store.figures()
        return Heartbeat(
            device=store.device,
            time_ms=self.context.clock(),
            versions={PackageKind(k): v for k, v in store.caches.versions().items()},
            journal_depth=figures.unacked,
            oldest_unsynced_ms=figures.oldest_unacked_ms,
            clock_offset_ms=self.context.client.offset_ms,
            disk_free_bytes=shutil.disk_usage(self.directory).free,
            readers=readers,
        )
