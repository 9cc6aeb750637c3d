"""Reading back what an agent journalled: the taps of its store, chain verified."""

from __future__ import annotations

from pathlib import Path

from farebox.agent.store.state import Store
from farebox.protocol.records import Tap


def journal_taps(path: Path, device: str = "bus-017") -> list[Tap]:
    """The taps journalled in the agent database at `path`, oldest first, once its chain
    verifies."""
    store = Store.open(path, device, lock_timeout_ms=1000)
    try:
        store.verify()
        bodies = [entry.record.body for entry in store.pending(10_000)]
    finally:
        store.close()
    return [body for body in bodies if isinstance(body, Tap)]
