"""What the uploader, downloader and heartbeat share: the client, the store thread, the
sync windows, retries with backoff and full jitter, and one way to stop them all.

A request that fails in a way worth retrying (no answer, 429, 5xx, a stale or replayed
request) is retried with tenacity's `wait_random_exponential`: each wait is drawn
uniformly between zero and an exponentially growing cap (AWS's "full jitter"), so 300
buses back at the depot at once spread their retries out instead of stampeding.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from farebox.agent.errors import DeviceRefusedError, ServerUnavailableError
from farebox.agent.store.state import Store
from farebox.agent.sync.client import DeviceClient
from farebox.agent.sync.report import Reporter
from farebox.agent.sync.settings import SyncConfig

log = logging.getLogger(__name__)
T = TypeVar("T")
# Outside its windows the sync looks at the clock at least this often, so that a clock
# set by NTP or a changed time zone is noticed within a minute.
WINDOW_CHECK_S = 60.0


class OnStore(Protocol):
    """Runs a blocking store call on the store thread (Runtime.on_store)."""

    def __call__(self, function: Callable[..., T], *args: object) -> Awaitable[T]: ...


class SyncContext:
    """Shared by the three sync loops of one running agent."""

    def __init__(
        self,
        config: SyncConfig,
        client: DeviceClient,
        store: Store,
        on_store: OnStore,
        reporter: Reporter,
        *,
        clock: Callable[[], int],
        local_time: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.on_store = on_store
        self.reporter = reporter
        self.clock = clock
        self.local_time = local_time
        self.done = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self.done.is_set()

    def window_open(self) -> bool:
        return self.config.windows.open_at(self.local_time())

    async def pause(self, seconds: float) -> None:
        """Sleep for `seconds`, or less if the sync is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), seconds)

    async def wait_window(self) -> bool:
        """Wait until a sync window is open; False if the sync stops first."""
        while not self.stopping:
            wait = self.config.windows.seconds_until_open(self.local_time())
            if wait <= 0:
                return True
            await self.pause(min(wait, WINDOW_CHECK_S))
        return False

    async def call(self, request: Callable[[], Awaitable[T]], source: str) -> T:
        """Run `request` for `source` (see `Reporter.answered`), retrying
        ServerUnavailableError with backoff and full jitter until it succeeds, the window
        closes or the sync stops (then the last error is raised)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(ServerUnavailableError),
            wait=wait_random_exponential(
                multiplier=self.config.retry_initial_s, max=self.config.retry_max_s
            ),
            stop=lambda _: self.stopping or not self.window_open(),
            sleep=self.pause,
            before_sleep=functools.partial(self._retrying, source=source),
            reraise=True,
        )
        answer: T = await retrying(request)
        self.reporter.answered(source)
        return answer

    def _retrying(self, state: RetryCallState, source: str) -> None:
        """Before each wait: log the failure, and note it for `status` (written once per
        distinct error, so the retries of one failure cost the SD card nothing)."""
        outcome = state.outcome
        error = None if outcome is None else outcome.exception()
        wait = 0.0 if state.next_action is None else state.next_action.sleep
        log.warning("sync: %s; retry %d in %.1f s", error, state.attempt_number, wait)
        if error is not None:
            self.reporter.error(str(error), source)

    def refuse(self, error: DeviceRefusedError) -> None:
        """The server no longer accepts this device: stop every loop, loudly."""
        log.error("sync stopped: the server refuses this device (%s)", error)
        self.reporter.refused(str(error))
        self.done.set()
