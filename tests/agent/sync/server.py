"""A small sync server for the agent's tests: real aiohttp on 127.0.0.1, judged by the
protocol's own `judge` and `verify_request`, with faults injected on demand.

It implements just enough of docs/protocol.md section 8 (enroll, batches, packages,
heartbeat) for the agent's sync to be tested before the real server exists; the
end-to-end tests against farebox.server come with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from farebox.protocol import cbor
from farebox.protocol.auth import HEADER_SERVER_TIME, RequestProof, verify_request
from farebox.protocol.chain import Cursor
from farebox.protocol.enrollment import (
    DeviceKind,
    Enrollment,
    decode_enroll_request,
    encode_enrollment,
)
from farebox.protocol.errors import DecodeError, SignatureError, StaleRequestError
from farebox.protocol.heartbeat import Heartbeat, decode_heartbeat
from farebox.protocol.keys import SigningKey, VerifyKey
from farebox.protocol.messages import Ack, Batch, decode_message, encode_message
from farebox.protocol.package_keys import Endorsement, encode_endorsements
from farebox.protocol.packages import Package, PackageKind, encode_package, sign_package
from farebox.protocol.session import Accepted, answer, judge

PACKAGE_KEY = SigningKey.from_seed(b"\x5e" * 32)
DROP = "drop"  # a fault: store the batch, then close the connection without answering
SLOW = "slow"  # a fault: store the batch, then answer only after the device has given up
SLOW_ANSWER_S = 2.5  # past the test devices' request timeout (tests/agent/sync/conftest.py)
Fault = int | tuple[int, str] | str  # a status, a status with a problem code, DROP or SLOW
DROPPING = web.RequestKey("dropping", bool)
SLOWING = web.RequestKey("slowing", bool)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def problem(status: int, code: str) -> web.Response:
    body = {"type": "about:blank", "title": code, "status": status, "code": code}
    return web.Response(
        status=status, body=json.dumps(body), content_type="application/problem+json"
    )


def whole_package(kind: PackageKind, version: int, payload: bytes) -> Package:
    """A full package of a whole-state kind (config, tariff, keyset)."""
    checksum = hashlib.sha256(payload).digest()
    return sign_package(kind, version, None, checksum, payload, PACKAGE_KEY)


@dataclass
class Device:
    key: VerifyKey
    cursor: Cursor
    revoked: bool = False


@dataclass
class SyncServer:
    """The server's state, open to the test: devices, stored records, faults, packages."""

    tokens: dict[str, str] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    stored: Counter[tuple[str, int]] = field(default_factory=Counter)
    packages: dict[PackageKind, list[Package]] = field(default_factory=dict)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    heartbeats: list[Heartbeat] = field(default_factory=list)
    requests: list[tuple[str, str, float]] = field(default_factory=list)
    nonces: set[bytes] = field(default_factory=set)
    skew_ms: int = 0
    hold: asyncio.Event | None = None  # if set, batch answers wait for it (after storing)
    endorsements: list[Endorsement] = field(default_factory=list)
    config: Package = field(default_factory=lambda: whole_package(
        PackageKind.CONFIG, 1, cbor.encode({"in_service": True})))  # fmt: skip

    def now_ms(self) -> int:
        return wall_ms() + self.skew_ms

    def publish(self, package: Package) -> None:
        self.packages.setdefault(package.kind, []).append(package)

    def fail(self, path: str, *faults: Fault) -> None:
        self.faults.setdefault(path, []).extend(faults)

    def posts(self, path: str) -> list[float]:
        return [at for method, p, at in self.requests if method == "POST" and p == path]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1/enroll", self._enroll)
        app.router.add_post("/v1/batches", self._batches)
        app.router.add_get("/v1/packages/{kind}", self._package)
        app.router.add_get("/v1/package-keys", self._package_keys)
        app.router.add_post("/v1/heartbeat", self._heartbeat)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, time.monotonic()))
        queued = self.faults.get(request.path)
        fault = queued.pop(0) if queued else None
        if isinstance(fault, int | tuple):
            status, code = fault if isinstance(fault, tuple) else (fault, "injected")
            response: web.StreamResponse = problem(status, code)
        else:
            request[DROPPING] = fault == DROP
            request[SLOWING] = fault == SLOW
            response = await handler(request)
        response.headers[HEADER_SERVER_TIME] = str(self.now_ms())
        return response

    async def _authenticate(self, request: web.Request, body: bytes) -> str | web.Response:
        try:
            proof = RequestProof.from_headers(request.headers)
        except DecodeError:
            return problem(401, "unsigned")
        device = self.devices.get(proof.device)
        if device is None:
            return problem(401, "unknown_device")
        if device.revoked:
            return problem(401, "revoked")
        try:
            verify_request(
                proof, device.key, request.method, request.path_qs, body, now_ms=self.now_ms()
            )
        except StaleRequestError:
            return problem(401, "stale")
        except SignatureError:
            return problem(401, "bad_signature")
        if proof.nonce in self.nonces:
            return problem(401, "replay")
        self.nonces.add(proof.nonce)
        return proof.device

    async def _enroll(self, request: web.Request) -> web.Response:
        wanted = decode_enroll_request(await request.read())
        device = self.tokens.pop(wanted.token, None)
        if device is None:
            return problem(403, "enrollment_token")
        self.devices[device] = Device(wanted.public_key, Cursor.start(device))
        enrollment = Enrollment(
            device,
            DeviceKind.BUS,
            (PACKAGE_KEY.verify_key,),
            self.now_ms(),
            encode_package(self.config),
        )
        return web.Response(body=encode_enrollment(enrollment), content_type="application/cbor")

    async def _batches(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        who = await self._authenticate(request, body)
        if isinstance(who, web.Response):
            return who
        batch = decode_message(body)
        assert isinstance(batch, Batch)
        assert batch.device == who
        device = self.devices[who]
        judgement = judge(device.cursor, batch, device.key)
        if isinstance(judgement, Accepted):
            for entry in judgement.new:
                self.stored[who, entry.record.seq] += 1
            device.cursor = judgement.cursor
        if self.hold is not None:
            await self.hold.wait()
        if request[SLOWING]:
            await asyncio.sleep(SLOW_ANSWER_S)
        if request[DROPPING]:
            assert request.transport is not None
            request.transport.abort()  # stored, but the answer never leaves
        message = answer(who, judgement, device.cursor, self.now_ms())
        status = 200 if isinstance(message, Ack) else 409
        return web.Response(
            status=status, body=encode_message(message), content_type="application/cbor"
        )

    async def _package(self, request: web.Request) -> web.Response:
        who = await self._authenticate(request, b"")
        if isinstance(who, web.Response):
            return who
        kind = PackageKind(request.match_info["kind"])
        have = int(request.query["have"])
        published = self.packages.get(kind, [])
        if not published:
            return problem(404, "no_package")
        latest = max(p.version for p in published)
        if have == latest:
            return web.Response(status=304)
        delta = [p for p in published if p.version == latest and p.base_version == have]
        full = [p for p in published if p.version == latest and p.base_version is None]
        chosen = (delta or full)[-1]
        return web.Response(body=encode_package(chosen), content_type="application/cbor")

    async def _package_keys(self, request: web.Request) -> web.Response:
        who = await self._authenticate(request, b"")
        if isinstance(who, web.Response):
            return who
        body = encode_endorsements(self.endorsements)
        return web.Response(body=body, content_type="application/cbor")

    async def _heartbeat(self, request: web.Request) -> web.Response:
        body = await request.read()
        who = await self._authenticate(request, body)
        if isinstance(who, web.Response):
            return who
        self.heartbeats.append(decode_heartbeat(body))
        return web.Response(status=204)


@asynccontextmanager
async def serving(server: SyncServer) -> AsyncIterator[str]:
    """Run `server` on 127.0.0.1 at a free port; yield its base URL."""
    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
