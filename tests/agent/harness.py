"""An in-process agent for runtime tests: a list reader, a feedback recorder, bounded waits."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from farebox.agent.config import AgentConfig, parse_config
from farebox.agent.feedback import Indication
from farebox.agent.presentation import Presentation
from farebox.agent.readers.base import Health, HealthState, Sink
from farebox.agent.runtime import Runtime
from farebox.agent.store.state import Store
from farebox.agent.systemd import Notifier


def agent_config(tmp_path: Path, **sections: dict[str, object]) -> AgentConfig:
    document: dict[str, object] = {
        "device": {"id": "bus-017"},
        "location": {"route": "12", "vehicle": "bus-017", "stop": "abay-ave"},
        "state": {"directory": str(tmp_path)},
        "runtime": {"probe_interval_s": 0.05},
    }
    for name, values in sections.items():
        merged = dict(document.get(name, {}))  # type: ignore[call-overload]
        merged.update(values)
        document[name] = merged
    return parse_config(document, {})


class ListReader:
    """Delivers presentations handed to `feed` on the loop, as a reader thread would."""

    def __init__(self, reader_id: str = "list-0") -> None:
        self.reader_id = reader_id
        self._sink: Sink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stopped = False

    @property
    def health(self) -> Health:
        return Health(HealthState.STOPPED if self.stopped else HealthState.READY, "list")

    def start(self, loop: asyncio.AbstractEventLoop, sink: Sink) -> None:
        self._loop, self._sink = loop, sink

    def feed(self, presentations: Iterable[Presentation]) -> None:
        assert self._loop is not None
        assert self._sink is not None
        for presentation in presentations:
            self._loop.call_soon_threadsafe(self._sink, presentation)

    def stop(self) -> bool:
        self.stopped = True
        return True


@dataclass
class Recorder:
    """Feedback that notes, for each tap shown, whether its record was already committed."""

    database: Path
    shown: list[tuple[Indication, bool]] = field(default_factory=list)
    closed: bool = False

    def show(self, indication: Indication) -> None:
        committed = False
        if indication.seq is not None:
            # A separate connection sees only what is committed.
            conn = sqlite3.connect(self.database)
            try:
                row = conn.execute(
                    "SELECT 1 FROM journal WHERE seq = ?", (indication.seq,)
                ).fetchone()
            finally:
                conn.close()
            committed = row is not None
        self.shown.append((indication, committed))

    def close(self) -> None:
        self.closed = True

    @property
    def taps(self) -> list[Indication]:
        return [indication for indication, _ in self.shown if indication.seq is not None]


@dataclass
class Agent:
    runtime: Runtime
    reader: ListReader
    feedback: Recorder
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


async def start_agent(config: AgentConfig, notifier: Notifier | None = None) -> Agent:
    store = Store.open(
        config.state.database,
        config.device_id,
        lock_timeout_ms=config.state.lock_timeout_ms,
        max_size_bytes=config.state.max_size_bytes,
    )
    reader, feedback = ListReader(), Recorder(config.state.database)
    runtime = Runtime(config, store, [reader], feedback, notifier)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    await asyncio.wait_for(runtime.wait_ready(), 10)
    return Agent(runtime, reader, feedback, stop, task)


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait, in bounded steps, until `condition` holds; fail after `seconds`."""
    steps = int(seconds / 0.01)
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {seconds} s")
