"""The agent's runtime: readers in, one tap at a time through decide and the journal, feedback out.

    reader threads --call_soon_threadsafe--> queue --> tap loop --> store thread:
        identify, local history, decide, commit (synchronous=FULL) --> feedback

Readers and SQLite block, so each reader has its own thread and every store call runs
on one dedicated store thread; the event loop never blocks. Taps are handled strictly
one at a time in arrival order. A tap's record is committed before its feedback; if it
cannot be, the validator goes out of service (red, "OUT OF SERVICE", systemd status),
answers every tap with that and no record, and probes the journal until it can write
again. SIGTERM stops the readers, lets the tap in progress finish, and closes the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Protocol, TypeVar

from farebox.agent import feedback as indications
from farebox.agent.config import AgentConfig
from farebox.agent.decision import (
    LocalHistory,
    Now,
    decide,
    identify,
    location_event,
    refusal,
)
from farebox.agent.errors import AgentError, JournalUnavailableError
from farebox.agent.feedback import Feedback, Indication
from farebox.agent.policy import DeviceType, assess_clock
from farebox.agent.presentation import CardRemoved, Presentation
from farebox.agent.readers.base import Health, Sink
from farebox.agent.status import ReaderHealth, RuntimeStatus, write_runtime
from farebox.agent.store.state import Store
from farebox.agent.systemd import Notifier
from farebox.protocol.records import Event, EventKind, Location

log = logging.getLogger(__name__)
T = TypeVar("T")
# A background service (the sync) run beside the tap loop until the stop event is set.
Background = Callable[[asyncio.Event], Coroutine[object, object, None]]
HOUSEKEEPING_S = 3600.0
# A tap that takes longer than this is a stuck tap loop: the watchdog pings stop.
STUCK_S = 10.0


class Reader(Protocol):
    """What the runtime needs of a reader adapter (see farebox.agent.readers.base)."""

    reader_id: str

    @property
    def health(self) -> Health: ...

    def start(self, loop: asyncio.AbstractEventLoop, sink: Sink) -> None: ...

    def stop(self) -> bool: ...


class Service(StrEnum):
    STARTING = "starting"
    IN_SERVICE = "in_service"
    OUT_OF_SERVICE = "out_of_service"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class LocationChange:
    """A driver's (or a depot tool's) new route, vehicle or stop, queued with the taps."""

    location: Location
    direction: str | None = None


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Runtime:
    """One validator's service loop over an open store."""

    def __init__(
        self,
        config: AgentConfig,
        store: Store,
        readers: Sequence[Reader],
        feedback: Feedback,
        notifier: Notifier | None = None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.config = config
        self.store = store
        self.readers = tuple(readers)
        self.feedback = feedback
        self.notifier = notifier or Notifier({})
        self.clock = clock
        self.location = config.location
        self.direction = config.direction
        self.service = Service.STARTING
        self.service_message = "starting"
        self.taps_handled = 0
        self._since_ms = clock()
        self._queue: asyncio.Queue[Presentation | LocationChange] = asyncio.Queue()
        self._store_thread = ThreadPoolExecutor(1, thread_name_prefix="store")
        self._busy_since: float | None = None
        self._offset_ms: int | None = None
        self._server_time_expected = False
        self._server_time_seen = False
        self._ready = asyncio.Event()
        self._status_written: tuple[object, ...] = ()

    # ------------------------------------------------------------ the outside world

    def submit(self, item: Presentation | CardRemoved | LocationChange) -> None:
        """Queue a presentation or location change; call on the event loop's thread."""
        if not isinstance(item, CardRemoved):
            self._queue.put_nowait(item)

    @property
    def busy(self) -> bool:
        """True while a tap or location change is being handled."""
        return self._busy_since is not None

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def clock_measured(self, offset_ms: int) -> None:
        """The sync measured the server's clock minus ours; later taps are judged by it."""
        self._offset_ms = offset_ms
        self._server_time_seen = True

    def expect_server_time(self) -> None:
        """A sync will measure the server's clock: housekeeping waits for it (see
        `_housekeeping_now`)."""
        self._server_time_expected = True

    def reader_states(self) -> dict[str, str]:
        """Each reader's health state by reader id, as the heartbeat reports it."""
        return {reader.reader_id: reader.health.state.value for reader in self.readers}

    async def on_store(self, function: Callable[..., T], *args: object) -> T:
        """Run a blocking store call on the store thread, in turn with the taps' calls."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._store_thread, function, *args)

    # ------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event, background: Sequence[Background] = ()) -> None:
        """Serve until `stop` is set; then finish the tap in progress and close down.

        Each of `background` runs as a task of its own once the validator is ready, and
        must return soon after `stop` is set; it is cancelled if still running when the
        tap loop has finished, before the store closes.
        """
        loop = asyncio.get_running_loop()
        try:
            self._offset_ms = await self.on_store(self.store.clock_offset_ms)
        except AgentError as error:
            # Unknown drift is not a reason to stop: the clock is then judged on its own.
            log.warning("clock offset unknown: %s", error)
        try:
            await self.on_store(self._record_event, Event.of(EventKind.BOOT, pid=os.getpid()))
            self._set_service(Service.IN_SERVICE, "ready")
        except JournalUnavailableError as error:
            self._out_of_service(error)
        for reader in self.readers:
            reader.start(loop, self.submit)
        self.notifier.ready(self.service_message)
        self._ready.set()
        helpers = [
            asyncio.create_task(self._heartbeat(stop)),
            asyncio.create_task(self._recovery(stop)),
            asyncio.create_task(self._housekeeping(stop)),
        ]
        for service in background:
            task = asyncio.create_task(service(stop))
            task.add_done_callback(_report_failure)
            helpers.append(task)
        try:
            await self._tap_loop(stop)
        finally:
            self.notifier.stopping()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await asyncio.gather(*(asyncio.to_thread(reader.stop) for reader in self.readers))
            await self.on_store(self.store.close)
            self._store_thread.shutdown(wait=True)
            self.feedback.close()
            self._set_service(Service.STOPPED, "stopped")

    async def _tap_loop(self, stop: asyncio.Event) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(self._queue.get())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                self._busy_since = time.monotonic()
                try:
                    await self._handle(getter.result())
                finally:
                    self._busy_since = None
        finally:
            stopper.cancel()
            if not self._queue.empty():
                # Never shown, never recorded: the riders saw nothing and will tap again.
                log.info("stopping with %d presentations unanswered", self._queue.qsize())

    # ------------------------------------------------------------ one tap

    async def _handle(self, item: Presentation | LocationChange) -> None:
        if isinstance(item, LocationChange):
            await self._change_location(item)
            return
        if self.service is Service.OUT_OF_SERVICE:
            self.feedback.show(indications.OUT_OF_SERVICE)
            return
        try:
            shown = await self.on_store(self._decide_or_refuse, item)
        except JournalUnavailableError as error:
            self._out_of_service(error)  # shows OUT OF SERVICE for this tap too
            return
        except Exception:
            # Not even the refusal could be recorded: nothing is shown, the gate stays
            # shut, the rider taps again, and the loop goes on to the next tap.
            log.exception("a tap from %s was refused and not recorded", item.reader_id)
            return
        self.taps_handled += 1
        self.feedback.show(shown)

    def _decide_or_refuse(self, presentation: Presentation) -> Indication:
        """On the store thread: the tap decided and recorded, or, if deciding it failed
        for any reason but the journal, refused and recorded as such.

        A fault in one tap's decision (a bug, or a code made to reach one) must cost that
        tap only, never the tap loop and with it the validator.
        """
        try:
            return self._decide_and_record(presentation)
        except JournalUnavailableError:
            raise
        except Exception:
            log.exception("a tap from %s could not be decided: refused", presentation.reader_id)
        decision = refusal(presentation, self.store.caches, self.config.policy)
        now = self._now(presentation)
        entry = self.store.record(now.time_ms, now.clock, self.location, decision.tap)
        return indications.for_tap(decision.tap, entry.record.seq, gate=False)

    def _now(self, presentation: Presentation) -> Now:
        time_ms = int(presentation.read_at.utc.timestamp() * 1000)
        policy = self.config.policy
        return Now(time_ms, assess_clock(time_ms, self._offset_ms, policy.max_drift_ms))

    def _decide_and_record(self, presentation: Presentation) -> Indication:
        """On the store thread: gather the inputs, decide, and commit the record."""
        now = self._now(presentation)
        policy = self.config.policy
        who = identify(presentation)
        since = now.time_ms - max(self.config.state.history_ms, policy.passback_ms)
        history = LocalHistory(
            self.store.recent(who.token, since),
            0 if who.ticket_id is None else self.store.ticket_uses(who.ticket_id),
        )
        decision = decide(presentation, self.store.caches, history, now, self.location, policy)
        entry = self.store.record(
            now.time_ms,
            now.clock,
            self.location,
            decision.tap,
            remember=decision.remember,
            ticket=decision.ticket,
        )
        gate = policy.device_type is DeviceType.TURNSTILE
        return indications.for_tap(decision.tap, entry.record.seq, gate=gate)

    def _record_event(self, event: Event) -> None:
        time_ms = self.clock()
        clock = assess_clock(time_ms, self._offset_ms, self.config.policy.max_drift_ms)
        self.store.record(time_ms, clock, self.location, event)

    async def _change_location(self, change: LocationChange) -> None:
        event = location_event(self.location, change.location, change.direction)
        if event is None:
            return
        previous = self.location
        self.location, self.direction = change.location, change.direction
        try:
            await self.on_store(self._record_event, event)
        except JournalUnavailableError as error:
            # The change must be journalled before taps are stamped with it.
            self.location = previous
            self._out_of_service(error)

    # ------------------------------------------------------------ service state

    def _set_service(self, service: Service, message: str) -> None:
        self.service, self.service_message, self._since_ms = service, message, self.clock()
        self.notifier.status(f"{service.value}: {message}")
        self.write_status()

    def write_status(self) -> None:
        """Write runtime.json if the service state or a reader's health has changed.

        Only on change: a validator's SD card should not take a write every few seconds.
        """
        readers = tuple(
            ReaderHealth(r.reader_id, r.health.state.value, r.health.message) for r in self.readers
        )
        seen = (self.service, self.service_message, readers)
        if seen == self._status_written:
            return
        status = RuntimeStatus(
            self.service.value,
            self._since_ms,
            self.service_message,
            readers,
            os.getpid(),
            self.clock(),
        )
        try:
            write_runtime(self.config.state.directory, status)
            self._status_written = seen
        except OSError as error:
            # With the disk full this fails too; the journal state is what matters.
            log.debug("cannot write the runtime status: %s", error)

    def _out_of_service(self, error: AgentError) -> None:
        if self.service is not Service.OUT_OF_SERVICE:
            log.error("OUT OF SERVICE: %s", error)
            self._set_service(Service.OUT_OF_SERVICE, str(error))
            self.feedback.show(indications.OUT_OF_SERVICE)

    async def _recovery(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _sleep_or_stop(stop, self.config.probe_interval_s)
            if self.service is not Service.OUT_OF_SERVICE:
                continue
            try:
                await self.on_store(self.store.probe)
            except JournalUnavailableError as error:
                log.debug("journal still unavailable: %s", error)
                continue
            log.warning("back in service: the journal is writable again")
            self._set_service(Service.IN_SERVICE, "journal writable again")
            self.feedback.show(indications.IN_SERVICE)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        interval = (self.notifier.watchdog_s or 30.0) / 3
        while not stop.is_set():
            busy = self._busy_since
            if busy is not None and time.monotonic() - busy > STUCK_S:
                log.error(
                    "tap loop stuck for %.1f s: watchdog pings withheld", time.monotonic() - busy
                )
            else:
                self.notifier.watchdog()
            self.write_status()
            await _sleep_or_stop(stop, interval)

    def _housekeeping_now(self) -> int | None:
        """The time housekeeping forgets by: our clock, which stamped what it forgets, once
        a sync of this run found it within `policy.max_drift_s` of the server's; None while
        it has not. A clock a year fast at boot (a flat RTC battery, before NTP steps it
        back) would otherwise forget every used QR ticket and the riders' history at once,
        and one days slow, by the server's time, what it stamped today. A validator that
        does not sync goes by its own clock."""
        if not self._server_time_expected:
            return self.clock()
        offset = self._offset_ms
        if not self._server_time_seen or offset is None:
            return None
        return self.clock() if abs(offset) <= self.config.policy.max_drift_ms else None

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        state = self.config.state
        while not stop.is_set():
            now = self._housekeeping_now()
            try:
                if now is None:
                    log.info("housekeeping waits for a sync to find the clock right")
                else:
                    prune = partial(
                        self.store.prune,
                        now,
                        retention_ms=state.retention_ms,
                        history_ms=state.history_ms,
                    )
                    dropped = await self.on_store(prune)
                    log.info("housekeeping: pruned %d acknowledged records", dropped)
            except AgentError as error:
                log.warning("housekeeping failed: %s", error)
            await _sleep_or_stop(stop, HOUSEKEEPING_S)


def _report_failure(task: asyncio.Task[None]) -> None:
    # A background service that dies must say so when it happens, not at shutdown; the
    # taps go on without it.
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("background service failed: %r", error, exc_info=error)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
