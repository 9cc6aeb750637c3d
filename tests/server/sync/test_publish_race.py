"""Two server processes publishing at once (PostgreSQL): each publication takes the next
version, none is refused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from farebox.protocol.packages import PackageKind
from farebox.server.ledger.store import open_store
from farebox.server.sync import publishing

pytestmark = pytest.mark.postgres


async def test_a_publication_racing_another_takes_the_version_after_it(
    postgres_dsn: str,
) -> None:
    store = await open_store(postgres_dsn)
    other = await asyncpg.connect(postgres_dsn)
    try:
        await store.migrate()
        # Another process's publication of version 1, written and not yet committed.
        in_flight = other.transaction()
        await in_flight.start()
        await other.execute(
            "INSERT INTO packages (kind, version, body, created_ms) VALUES ('tariff', 1, '', 0)"
        )
        racing = asyncio.create_task(
            store.run(publishing.publish, PackageKind.TARIFF, b"tariff two", 0)
        )
        await asyncio.sleep(0.3)  # it read version 0 as the latest and waits on version 1
        assert not racing.done()
        await in_flight.commit()
        package = await asyncio.wait_for(racing, 10)
        assert package.version == 2
    finally:
        await other.close()
        await store.close()
