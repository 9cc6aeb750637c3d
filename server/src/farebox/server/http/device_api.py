"""The device API (docs/protocol.md section 8): thin handlers over the sync core.

Every request but enrollment is signed by the device key; `authenticate` checks the
device, the signature over method, path, time and body, the time window and the nonce,
and refuses with 401 before anything is stored.
"""

from __future__ import annotations

import functools
import time

from aiohttp import web

from farebox.protocol.auth import RequestProof, verify_request
from farebox.protocol.enrollment import (
    Enrollment,
    decode_enroll_request,
    encode_enrollment,
)
from farebox.protocol.errors import DecodeError, SignatureError, StaleRequestError
from farebox.protocol.heartbeat import decode_heartbeat
from farebox.protocol.messages import Ack, Batch, decode_message, encode_message
from farebox.protocol.package_keys import encode_endorsements
from farebox.protocol.packages import PackageKind, encode_package
from farebox.server.errors import ServerError
from farebox.server.http.problems import Handler, classify
from farebox.server.http.state import LEDGER, METRICS, SETTINGS, STORE
from farebox.server.ledger.store import Session
from farebox.server.sync import devices, publishing
from farebox.server.sync.devices import Device
from farebox.server.sync.errors import AuthenticationError, MalformedRequestError
from farebox.server.sync.ingest import ingest

CBOR = "application/cbor"


async def authenticate(request: web.Request, body: bytes) -> Device:
    """The device that signed this request, or AuthenticationError (401) with its code."""
    settings, store = request.app[SETTINGS], request.app[STORE]
    try:
        proof = RequestProof.from_headers(request.headers)
    except DecodeError as error:
        raise AuthenticationError(str(error), "unsigned") from None
    now_ms = settings.clock()

    async def work(session: Session) -> Device:
        device = await devices.device(session, proof.device)
        if device is None:
            raise AuthenticationError(f"unknown device {proof.device!r}", "unknown_device")
        if device.revoked:
            raise AuthenticationError(f"device {proof.device!r} is revoked", "revoked")
        try:
            verify_request(
                proof, device.key, request.method, request.path_qs, body,
                now_ms=now_ms, window_ms=settings.auth_window_ms,
            )  # fmt: skip
        except StaleRequestError as error:
            raise AuthenticationError(str(error), "stale") from None
        except SignatureError as error:
            raise AuthenticationError(str(error), "bad_signature") from None
        fresh = await devices.remember_nonce(
            session, device.id, proof.nonce, now_ms, settings.auth_window_ms
        )
        if not fresh:
            raise AuthenticationError("this request was seen before", "replay")
        return device

    return await store.run(work)


def _cbor(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=CBOR)


async def enroll(request: web.Request) -> web.Response:
    settings, store = request.app[SETTINGS], request.app[STORE]
    enroll_request = decode_enroll_request(await request.read())
    now_ms = settings.clock()

    async def work(session: Session) -> Enrollment:
        device = await devices.enroll(
            session, enroll_request.token, enroll_request.public_key, now_ms
        )
        config = await publishing.config_package(session, now_ms)
        keys = await publishing.trusted_keys(session)
        return Enrollment(device.id, device.kind, tuple(keys), now_ms, encode_package(config))

    return _cbor(encode_enrollment(await store.run(work)))


async def batches(request: web.Request) -> web.Response:
    settings, store = request.app[SETTINGS], request.app[STORE]
    started = time.perf_counter()
    body = await request.read()
    device = await authenticate(request, body)
    message = decode_message(body)
    if not isinstance(message, Batch):
        raise MalformedRequestError(f"expected a batch, got a {type(message).__name__.lower()}")
    if message.device != device.id:
        raise AuthenticationError(
            f"{device.id} cannot send {message.device}'s records", "bad_signature"
        )
    known = request.app[LEDGER].known
    result = await ingest(store, settings.books, message, settings.clock(), known)
    request.app[METRICS].batch(result, time.perf_counter() - started)
    status = 200 if isinstance(result.answer, Ack) else 409
    return _cbor(encode_message(result.answer), status)


async def packages(request: web.Request) -> web.Response:
    settings, store = request.app[SETTINGS], request.app[STORE]
    await authenticate(request, b"")
    try:
        kind = PackageKind(request.match_info["kind"])
        have = int(request.query.get("have", "0"))
    except ValueError:
        raise MalformedRequestError("unknown package kind or version") from None
    now_ms = settings.clock()
    package = await store.run(lambda session: publishing.package_for(session, kind, have, now_ms))
    if package is None:
        raise web.HTTPNotModified
    etag = f'"{kind.value}-{package.version}"'
    if request.headers.get("If-None-Match") == etag:
        raise web.HTTPNotModified
    response = _cbor(encode_package(package))
    response.headers["ETag"] = etag
    return response


async def package_keys(request: web.Request) -> web.Response:
    """The endorsements by which enrolled devices come to trust rotated package keys."""
    await authenticate(request, b"")
    chain = await request.app[STORE].run(publishing.endorsements)
    return _cbor(encode_endorsements(chain))


async def heartbeat(request: web.Request) -> web.Response:
    settings, store = request.app[SETTINGS], request.app[STORE]
    body = await request.read()
    device = await authenticate(request, body)
    beat = decode_heartbeat(body)
    if beat.device != device.id:
        raise AuthenticationError(f"{device.id} cannot report for {beat.device}", "bad_signature")
    now_ms = settings.clock()

    async def work(session: Session) -> None:
        await session.execute(
            "INSERT INTO heartbeats (device, received_ms, body) VALUES ($1, $2, $3) "
            "ON CONFLICT (device) DO UPDATE SET received_ms = excluded.received_ms, "
            "body = excluded.body",
            device.id, now_ms, body,
        )  # fmt: skip

    await store.run(work)
    return web.Response(status=204)


def _counted(handler: Handler) -> Handler:
    """Count each refused device request by its problem code, as the problem will say."""

    @functools.wraps(handler)
    async def counted(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ServerError, DecodeError) as error:
            request.app[METRICS].refusal(classify(error)[1])
            raise

    return counted


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/enroll", _counted(enroll))
    app.router.add_post("/v1/batches", _counted(batches))
    app.router.add_get("/v1/packages/{kind}", _counted(packages))
    app.router.add_get("/v1/package-keys", _counted(package_keys))
    app.router.add_post("/v1/heartbeat", _counted(heartbeat))
