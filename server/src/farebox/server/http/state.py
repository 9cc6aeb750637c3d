"""The application's typed state: its settings, its store, its ledger and its metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from farebox.protocol.auth import DEFAULT_WINDOW_MS
from farebox.protocol.keys import VerifyKey
from farebox.server.errors import ConfigurationError
from farebox.server.http.metrics import Metrics
from farebox.server.ledger.book import Ledger, wall_clock_ms
from farebox.server.ledger.store import Store
from farebox.server.ledger.top_up_policy import TopUpPolicy
from farebox.server.sync.fares import Books
from farebox.server.sync.publishing import Snapshots

MAX_BODY_BYTES = 8 * 1024 * 1024
SETTLE_EVERY_S = 300.0


@dataclass(frozen=True, slots=True)
class Settings:
    """What one server process needs to know; see `farebox-server run --help`."""

    db: str
    books: Books
    operator_token: str | None = None
    auth_window_ms: int = DEFAULT_WINDOW_MS
    max_body_bytes: int = MAX_BODY_BYTES
    settle_every_s: float = SETTLE_EVERY_S
    """How often the settlement task settles the closed fare days that are due."""
    top_ups: TopUpPolicy = field(default_factory=TopUpPolicy)
    clock: Callable[[], int] = field(default=wall_clock_ms, compare=False)

    def __post_init__(self) -> None:
        if not self.settle_every_s > 0:  # also refuses NaN
            raise ConfigurationError("the settlement period must be a positive number of seconds")


SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
LEDGER = web.AppKey("ledger", Ledger)
METRICS = web.AppKey("metrics", Metrics)
DEVICE_KEYS = web.AppKey("device_keys", dict[str, VerifyKey])
"""The keys of the devices this process has seen, by device id (see `authenticate`)."""
SNAPSHOTS = web.AppKey("snapshots", Snapshots)
"""The last whole-stoplist package this process made (see `publishing.Snapshots`)."""
