"""The ledger's test fixtures: the same tests run on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farebox.server.ledger.book import Ledger
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.store import open_store

ALMATY = FareDayPolicy.parse("Asia/Almaty", "03:00")


class Clock:
    """A clock the test moves by hand, in UTC milliseconds."""

    def __init__(self, start: datetime) -> None:
        self.now_ms = int(start.timestamp() * 1000)

    @classmethod
    def at_ms(cls, now_ms: int) -> Clock:
        clock = cls(datetime(1970, 1, 1, tzinfo=UTC))
        clock.now_ms = now_ms
        return clock

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty store: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 2, 6, 0, tzinfo=UTC))


@pytest.fixture
async def ledger(store_url: str, clock: Clock) -> AsyncIterator[Ledger]:
    store = await open_store(store_url)
    try:
        await store.migrate()
        yield Ledger(store, ALMATY, clock=clock)
        assert await Ledger(store, ALMATY, clock=clock).violations() == []
    finally:
        await store.close()
