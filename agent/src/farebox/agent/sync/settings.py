"""The `[sync]` section of the agent's config: server, batching, polling, windows, retries.

docs/agent.md describes every key. Retries wait `retry_initial_s` times a random factor
growing exponentially up to `retry_max_s` (full jitter), so that a fleet coming back to
the depot at once spreads its requests out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from farebox.agent.config_table import Table
from farebox.agent.sync.windows import SyncWindows
from farebox.protocol.errors import InvalidValueError
from farebox.protocol.messages import MAX_BATCH_RECORDS


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """How the background sync talks to the server; `server` None means the enrolled one."""

    server: str | None = None
    flush_interval_s: float = 10.0
    batch_size: int = 200
    max_batch_records: int = 1000
    package_poll_s: float = 300.0
    heartbeat_s: float = 60.0
    windows: SyncWindows = field(default_factory=SyncWindows)
    request_timeout_s: float = 30.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 300.0


def parse_sync(document: Mapping[str, object], problems: list[str]) -> SyncConfig:
    known = {
        "server",
        "flush_interval_s",
        "batch_size",
        "max_batch_records",
        "package_poll_s",
        "heartbeat_s",
        "windows",
        "request_timeout_s",
        "retry_initial_s",
        "retry_max_s",
    }
    table = Table(document.get("sync", {}), "sync", problems, known)
    server = table.text("server")
    if server is not None and not server.startswith(("http://", "https://")):
        problems.append(f"sync.server must be an http:// or https:// URL, got {server!r}")
    windows = SyncWindows()
    texts = table.data.get("windows", [])
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        problems.append(f"sync.windows must be a list of 'HH:MM-HH:MM' strings, got {texts!r}")
    else:
        try:
            windows = SyncWindows.parse(texts)
        except InvalidValueError as error:
            problems.append(f"sync.windows: {error}")
    max_records = int(table.number("max_batch_records", 1000, least=1))
    if max_records > MAX_BATCH_RECORDS:
        problems.append(f"sync.max_batch_records must be at most {MAX_BATCH_RECORDS}")
    initial = table.number("retry_initial_s", 1.0, least=0.001)
    return SyncConfig(
        server=server,
        flush_interval_s=table.number("flush_interval_s", 10.0, least=0.01),
        batch_size=int(table.number("batch_size", 200, least=1)),
        max_batch_records=min(max_records, MAX_BATCH_RECORDS),
        package_poll_s=table.number("package_poll_s", 300.0, least=0.01),
        heartbeat_s=table.number("heartbeat_s", 60.0, least=0.01),
        windows=windows,
        request_timeout_s=table.number("request_timeout_s", 30.0, least=0.1),
        retry_initial_s=initial,
        retry_max_s=table.number("retry_max_s", 300.0, least=initial),
    )
