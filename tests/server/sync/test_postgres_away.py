"""PostgreSQL restarting, or away, under a running sync server: uploads are refused as
retryable while it is gone, and taken again without restarting farebox-server.

These restart the session's own cluster (tests run one at a time; the databases of other
tests are made afresh for each).
"""

from __future__ import annotations

import asyncio
import json
import logging

import asyncpg
import pytest

from farebox.server.errors import StoreError
from farebox.server.ledger.store import Session, open_store
from tests.server.sync.conftest import Device, Server
from tests.server.sync.test_device_api import batch, count
from tests.support.postgres import Cluster
from tests.support.records import chain

pytestmark = pytest.mark.postgres


async def test_a_restart_between_transactions_costs_none_of_them(
    postgres_dsn: str, postgres_cluster: Cluster
) -> None:
    store = await open_store(postgres_dsn)
    try:
        await store.migrate()
        assert await store.run(_one) == 1
        # Stopped and started while the event loop is held: the pooled connection is dead
        # and the pool has not seen it, as after a restart or a failover between uploads.
        # The next transaction's BEGIN finds it so, and goes to a new connection.
        postgres_cluster.stop()
        postgres_cluster.start()
        assert await store.run(_one) == 1
    finally:
        await store.close()


async def _one(session: Session) -> int:
    ((one,),) = await session.fetch("SELECT 1")
    return int(one)


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_uploads_wait_out_a_stopped_server_and_are_taken_when_it_is_back(
    server: Server,
    device: Device,
    postgres_cluster: Cluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = chain(device=device.id, count=20)
    assert await device.acked(batch(device, journal[:10])) == 10
    postgres_cluster.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="farebox.server.http.problems"):
            status, answer, _ = await device.request("POST", "/v1/batches", batch(device, journal))
        assert (status, json.loads(answer)["code"]) == (503, "unavailable")  # a device retries
        assert any("PostgreSQL store cannot be reached" in m for m in caplog.messages)
    finally:
        postgres_cluster.start()
    assert await device.acked(batch(device, journal[10:])) == 20
    assert await count(server, "SELECT count(*) FROM records") == 20


async def test_a_server_taking_no_more_connections_is_a_retryable_refusal(
    postgres_dsn: str,
) -> None:
    # A role allowed one connection: the pool's second is refused by the server, as when
    # max_connections is reached.
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute("CREATE ROLE one_connection LOGIN CONNECTION LIMIT 1")
        await admin.execute("GRANT ALL ON SCHEMA public TO one_connection")
    finally:
        await admin.close()
    store = await open_store(postgres_dsn.replace("//farebox@", "//one_connection@"))
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(session: Session) -> None:
        holding.set()
        await release.wait()

    try:
        first = asyncio.create_task(store.run(hold))
        await holding.wait()
        with pytest.raises(StoreError, match=r"cannot be reached.*too many connections"):
            await store.run(_one)
        release.set()
        await first
        assert await store.run(_one) == 1  # the held connection serves again
    finally:
        release.set()
        await store.close()
