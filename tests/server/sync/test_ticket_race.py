"""Two validators' uploads naming the same QR ticket at the same moment (PostgreSQL): both
are taken, and the later one raises the copy alert."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from farebox.protocol.chain import Cursor
from farebox.protocol.money import Money
from farebox.protocol.records import ClockState, EncodedRecord, MediaKind, Record
from farebox.server.ledger.store import Session
from tests.server.sync.conftest import Device, Server
from tests.server.sync.test_device_api import batch
from tests.support.records import ROUTE_12, accepted_tap

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("store_url", ["postgres"], indirect=True),
]
TICKET = "qr:T-77"


async def test_a_ticket_noted_by_an_upload_still_in_flight_is_an_alert_not_an_error(
    server: Server, device: Device, postgres_dsn: str
) -> None:
    tap = dataclasses.replace(
        accepted_tap(), media=MediaKind.QR, token=TICKET, fare=Money(15000, "KZT")
    )
    record = Record(device.id, 1, Cursor.start(device.id).head, server.clock(),
                    ClockState.SYNCED, ROUTE_12, tap)  # fmt: skip
    # Another server process is storing gate-3's batch with the same ticket: its first use
    # is written and not yet committed when this upload looks.
    other = await asyncpg.connect(postgres_dsn)
    try:
        in_flight = other.transaction()
        await in_flight.start()
        await other.execute(
            "INSERT INTO ticket_uses (token, device, seq, used_ms) VALUES ($1, 'gate-3', 9, $2)",
            TICKET,
            server.clock() - 1000,
        )
        upload = asyncio.create_task(
            device.request("POST", "/v1/batches", batch(device, [EncodedRecord.of(record)]))
        )
        await asyncio.sleep(0.5)
        assert not upload.done()  # it waits for the other upload's first use
        await in_flight.commit()
    finally:
        await other.close()
    status, answer, _ = await upload
    assert status == 200, answer

    async def alerts(session: Session) -> list[tuple[object, ...]]:
        rows = await session.fetch("SELECT token, device, first_device FROM ticket_alerts")
        return [tuple(row) for row in rows]

    assert await server.store.run(alerts) == [(TICKET, device.id, "gate-3")]
