"""What every reader adapter shares: its health, its retry policy, and its thread.

A reader library (nfcpy, pyserial) blocks, so each adapter runs it on its own thread and
hands every event to asyncio with `loop.call_soon_threadsafe`: the sink is always called
on the event loop's thread, never on the reader's. When the device is missing, unplugged
or forbidden, the adapter reports it in its health, waits (exponential backoff, capped)
and tries again; it never raises into the agent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeAlias

from farebox.agent.presentation import CardRemoved, Presentation, ReadTime

log = logging.getLogger(__name__)

ReaderEvent: TypeAlias = Presentation | CardRemoved
Sink: TypeAlias = Callable[[ReaderEvent], object]

STOP_WITHIN_S = 0.5


class HealthState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    UNAVAILABLE = "unavailable"  # missing, unplugged, forbidden: retried with backoff
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Health:
    """A reader's state, a message an operator can act on, and how many retries so far."""

    state: HealthState
    message: str
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential retry delays: `first`, doubling, never more than `most` seconds."""

    first: float = 0.2
    most: float = 5.0

    def delay(self, failures: int) -> float:
        return min(self.most, self.first * 2.0 ** max(0, failures - 1))


def read_time() -> ReadTime:
    """The current time as both clocks, taken at the moment of a read."""
    return ReadTime(monotonic=time.monotonic(), utc=datetime.now(UTC))


class ThreadedReader(ABC):
    """A reader adapter whose blocking device loop runs on a thread of its own.

    Subclasses implement `_session`: open the device, report READY, deliver events until
    `_stopping` is set, and raise OSError (or the library's own error, named by
    `_device_errors`) when the device goes away; the base turns that into health and
    a retry after a backoff.
    """

    _device_errors: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, reader_id: str, backoff: Backoff | None = None) -> None:
        self.reader_id = reader_id
        self.backoff = backoff or Backoff()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: Sink | None = None
        self._health = Health(HealthState.STOPPED, "not started")

    @property
    def health(self) -> Health:
        return self._health

    def start(self, loop: asyncio.AbstractEventLoop, sink: Sink) -> None:
        """Start reading; `sink` gets every event on `loop`'s thread."""
        if self._thread is not None:
            raise RuntimeError(f"reader {self.reader_id} is already started")
        self._loop, self._sink = loop, sink
        self._stopping.clear()
        self._health = Health(HealthState.STARTING, "starting")
        self._thread = threading.Thread(
            target=self._run, name=f"reader-{self.reader_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> bool:
        """Stop reading; True if the thread ended within STOP_WITHIN_S seconds."""
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        self._stopping.set()
        deadline = time.monotonic() + STOP_WITHIN_S
        # Wake repeatedly: the library may be between two waits when the first wake lands.
        while thread.is_alive() and (left := deadline - time.monotonic()) > 0:
            self._wake()
            thread.join(min(0.05, left))
        return not thread.is_alive()

    @abstractmethod
    def _wake(self) -> None:
        """Cut short a blocking wait inside the device library, where one can be."""

    @abstractmethod
    def _session(self) -> None: ...

    def _deliver(self, event: ReaderEvent) -> None:
        loop, sink = self._loop, self._sink
        if loop is None or sink is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(sink, event)
        except RuntimeError:  # the loop closed between the check and the call
            log.debug("reader %s: event after the loop closed", self.reader_id)

    def _set_health(self, state: HealthState, message: str, failures: int = 0) -> None:
        if (state, message) != (self._health.state, self._health.message):
            level = logging.WARNING if state is HealthState.UNAVAILABLE else logging.INFO
            log.log(level, "reader %s %s: %s", self.reader_id, state, message)
        self._health = Health(state, message, failures)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._session()
                failures = 0
            except self._device_errors as error:
                failures += 1
                self._set_health(HealthState.UNAVAILABLE, self._explain(error), failures)
                self._stopping.wait(self.backoff.delay(failures))
            except Exception as error:
                # A library bug on one odd frame must not end reading for the whole shift.
                log.exception("reader %s: unexpected error", self.reader_id)
                failures += 1
                self._set_health(HealthState.UNAVAILABLE, f"unexpected error: {error}", failures)
                self._stopping.wait(self.backoff.delay(failures))
        self._set_health(HealthState.STOPPED, "stopped")

    def _explain(self, error: BaseException) -> str:
        """An operator's reading of a device error; adapters add what they know."""
        return f"{type(error).__name__}: {error}"
