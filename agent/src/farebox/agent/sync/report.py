"""The sync's state as `farebox-agent status` shows it, kept in `sync.json`.

The running agent rewrites the file (atomically) only when the state or the last error
changes, not on every request nor on every retry of the same failure: a validator's SD
card should not take a write every few seconds. The time of the last acknowledged batch
is in the journal itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)
SYNC_FILE = "sync.json"


class SyncState(StrEnum):
    RUNNING = "running"
    UPLOADS_HALTED = "uploads_halted"
    REFUSED = "refused"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What the sync is doing, why uploads halted if they did, and the last error seen."""

    server: str
    state: SyncState
    halted: str | None = None
    last_error: str | None = None
    last_error_ms: int | None = None


def read_sync_report(directory: Path) -> Mapping[str, object] | None:
    try:
        value = json.loads((directory / SYNC_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class Reporter:
    """Keeps the current SyncReport and writes it whenever it changes."""

    def __init__(self, directory: Path, server: str, clock: Callable[[], int]) -> None:
        self.directory = directory
        self.clock = clock
        self.report = SyncReport(server, SyncState.RUNNING)
        self._failing: str | None = None  # what the error shown came from, while it fails
        self._write()

    def answered(self, source: str) -> None:
        """`source` (uploads, heartbeats, a package's polls) was answered: an error of its
        own after this is a new outage (noted in memory, no write)."""
        if source == self._failing:
            self._failing = None

    def error(self, message: str, source: str = "") -> None:
        """Note an error of `source`; the same one again keeps the time it was first seen
        (and costs no write), unless `source` was answered in between: a new outage."""
        if message != self.report.last_error or self._failing is None:
            self._set(replace(self.report, last_error=message, last_error_ms=self.clock()))
        self._failing = source

    def halted(self, reason: str) -> None:
        self._set(replace(self.report, state=SyncState.UPLOADS_HALTED, halted=reason))

    def resumed(self) -> None:
        """Uploads that had halted are acknowledged again."""
        if self.report.state is SyncState.UPLOADS_HALTED:
            self._set(replace(self.report, state=SyncState.RUNNING, halted=None))

    def refused(self, reason: str) -> None:
        self._set(
            replace(
                self.report, state=SyncState.REFUSED, last_error=reason, last_error_ms=self.clock()
            )
        )

    def stopped(self) -> None:
        if self.report.state is SyncState.RUNNING:
            self._set(replace(self.report, state=SyncState.STOPPED))

    def _set(self, report: SyncReport) -> None:
        if report != self.report:
            self.report = report
            self._write()

    def _write(self) -> None:
        temporary = self.directory / f".{SYNC_FILE}.tmp"
        try:
            temporary.write_text(json.dumps(asdict(self.report), sort_keys=True))
            temporary.replace(self.directory / SYNC_FILE)
        except OSError as error:
            # With the disk full this fails too; the journal is what matters.
            log.debug("cannot write the sync status: %s", error)
