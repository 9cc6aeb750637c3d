"""A real sync server on 127.0.0.1 with the operator API open, and what its tests share."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.messages import Batch, encode_message
from farebox.protocol.records import ClockState, EncodedRecord, Record, Tap
from farebox.server.http.app import create_app
from farebox.server.http.state import STORE, Settings
from farebox.server.sync.fares import Books
from tests.server.conftest import ALMATY, Clock
from tests.server.sync.conftest import Device, Server, device, http
from tests.support.records import ROUTE_12

__all__ = ["device", "http"]  # the sync tests' fixtures: an enrolled bus and a client

TOKEN = "operator-secret-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SETTLE_EVERY_S = 0.05
"""The settlement task's period in these tests: short, so a test waits little for it."""


@dataclasses.dataclass
class Operator(Server):
    """The server, and an operator's HTTP client with the right token."""

    http: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, *, expect: int = 200, **kwargs: Any
    ) -> dict[str, Any]:
        """Ask the operator API; check the status; return the JSON document."""
        headers = {**AUTH, **kwargs.pop("headers", {})}
        async with self.http.request(
            method, f"{self.url}{path.lstrip('/')}", headers=headers, **kwargs
        ) as response:
            document: dict[str, Any] = await response.json(content_type=None)
            assert response.status == expect, document
            return document


@pytest.fixture
async def server(store_url: str, clock: Clock) -> AsyncIterator[Server]:
    settings = Settings(
        db=store_url, books=Books(ALMATY), operator_token=TOKEN, clock=clock,
        settle_every_s=SETTLE_EVERY_S,
    )  # fmt: skip
    app = create_app(settings)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield Server(str(test_server.make_url("/")), app[STORE], clock)
    finally:
        await test_server.close()


@pytest.fixture
def operator(server: Server, http: aiohttp.ClientSession) -> Operator:
    return Operator(server.url, server.store, server.clock, http)


def records(
    device: Device, bodies: Sequence[Tap], time_ms: int, step_ms: int = 60_000
) -> list[EncodedRecord]:
    """Records continuing `device`'s cursor, one per tap, `step_ms` apart from `time_ms`."""
    cursor, entries = device.cursor, []
    for offset, body in enumerate(bodies):
        record = Record(
            device=device.id, seq=cursor.seq + 1, prev=cursor.head,
            time_ms=time_ms + offset * step_ms, clock=ClockState.SYNCED, location=ROUTE_12,
            body=body,
        )  # fmt: skip
        entry = EncodedRecord.of(record)
        entries.append(entry)
        cursor = cursor.after(entry)
    return entries


async def sync(device: Device, entries: Sequence[EncodedRecord]) -> int:
    """Upload `entries` as one batch; move the device's cursor on an ack; return the status."""
    last = entries[-1]
    checkpoint = Checkpoint(device.id, last.record.seq, last.digest, device.server.clock())
    body = encode_message(Batch(device.id, tuple(entries), sign_checkpoint(checkpoint, device.key)))
    status, _, _ = await device.request("POST", "/v1/batches", body)
    if status == 200:
        device.cursor = device.cursor.after(last)
    return status
