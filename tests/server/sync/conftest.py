"""A real sync server on 127.0.0.1 over a real store, and a device that talks to it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from farebox.protocol.auth import sign_request
from farebox.protocol.chain import Cursor
from farebox.protocol.enrollment import (
    DeviceKind,
    Enrollment,
    EnrollRequest,
    decode_enrollment,
    encode_enroll_request,
)
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import Ack, decode_message
from farebox.server.http.app import create_app
from farebox.server.http.state import STORE, Settings
from farebox.server.ledger.store import Store
from farebox.server.sync import devices
from farebox.server.sync.fares import Books
from tests.server.conftest import ALMATY, Clock

CBOR = {"Content-Type": "application/cbor"}


@dataclass
class Server:
    url: str
    store: Store
    clock: Clock

    async def token(self, name: str, kind: DeviceKind = DeviceKind.BUS) -> str:
        now = self.clock()
        return await self.store.run(
            lambda session: devices.create_token(session, name, kind, now, 3_600_000)
        )


@pytest.fixture
async def server(store_url: str, clock: Clock) -> AsyncIterator[Server]:
    app = create_app(Settings(db=store_url, books=Books(ALMATY), clock=clock))
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield Server(str(test_server.make_url("/")), app[STORE], clock)
    finally:
        await test_server.close()


class Device:
    """A device's HTTP side done by hand: what the agent's sync client does, minimally."""

    def __init__(self, server: Server, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = session
        self.key = SigningKey.generate()
        self.id = ""
        self.cursor = Cursor(0, bytes(32))

    async def enroll(self, token: str) -> Enrollment:
        body = encode_enroll_request(EnrollRequest(token, self.key.verify_key))
        async with self.http.post(f"{self.server.url}v1/enroll", data=body, headers=CBOR) as r:
            assert r.status == 200, await r.text()
            enrollment = decode_enrollment(await r.read())
        self.id = enrollment.device
        self.cursor = Cursor.start(self.id)
        return enrollment

    def headers(self, method: str, path: str, body: bytes, skew_ms: int = 0) -> dict[str, str]:
        proof = sign_request(
            self.key, self.id, method, path, body,
            time_ms=self.server.clock() + skew_ms, nonce=secrets.token_bytes(16),
        )  # fmt: skip
        return {**CBOR, **proof.headers()}

    async def acked(self, body: bytes) -> int:
        """Upload the batch `body`; the server must ack it: the seq it acknowledges."""
        status, answer, _ = await self.request("POST", "/v1/batches", body)
        assert status == 200, answer
        ack = decode_message(answer)
        assert isinstance(ack, Ack)
        return ack.cursor.seq

    async def request(
        self, method: str, path: str, body: bytes = b"", **extra: str
    ) -> tuple[int, bytes, CIMultiDict[str]]:
        headers = {**self.headers(method, path, body), **extra}
        async with self.http.request(
            method, f"{self.server.url}{path.lstrip('/')}", data=body, headers=headers
        ) as response:
            return response.status, await response.read(), response.headers.copy()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def device(server: Server, http: aiohttp.ClientSession) -> Device:
    bus = Device(server, http)
    await bus.enroll(await server.token("bus-017"))
    return bus
