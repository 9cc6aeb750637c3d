"""The device API (docs/protocol.md section 8): thin handlers over the sync core.

Every request but enrollment is signed by the device key; `authenticate` checks the
signature over method, path, time and body and the time window before any transaction,
and `devices.admit` the device's standing and the nonce first thing inside the one that
serves the request: each refuses with 401, and nothing is stored.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from farebox.protocol.auth import RequestProof, verify_request
from farebox.protocol.enrollment import (
    Enrollment,
    EnrollRequest,
    decode_enroll_request,
    encode_enrollment,
)
from farebox.protocol.errors import DecodeError, SignatureError, StaleRequestError
from farebox.protocol.heartbeat import decode_heartbeat
from farebox.protocol.keys import VerifyKey
from farebox.protocol.messages import Ack, Batch, decode_message, encode_message
from farebox.protocol.package_keys import encode_endorsements
from farebox.protocol.packages import PackageKind, encode_package
from farebox.protocol.records import MAX_SEQ
from farebox.protocol.wire import whole_number
from farebox.server.errors import ServerError
from farebox.server.http.problems import Handler, classify
from farebox.server.http.state import DEVICE_KEYS, LEDGER, METRICS, SETTINGS, SNAPSHOTS, STORE
from farebox.server.ledger.store import Session
from farebox.server.sync import devices, publishing
from farebox.server.sync.devices import Nonce
from farebox.server.sync.errors import AuthenticationError, MalformedRequestError
from farebox.server.sync.ingest import ingest

CBOR = "application/cbor"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Signed:
    """A request signed by `device` with `key`, its signature checked, not yet admitted."""

    device: str
    nonce: Nonce
    key: VerifyKey


async def authenticate(request: web.Request, body: bytes) -> Signed:
    """Check the request's signature by its device's key, outside any transaction; what
    it returns `devices.admit` takes inside the transaction serving the request, refusing
    a revoked device and a replay. 401 (AuthenticationError) with its code for an unsigned
    request, an unknown device, a bad signature or a stale time.

    A device's key never changes (a device id is enrolled once and never deleted), so each
    process keeps the keys it has read: a known device's upload needs no transaction of
    its own before the one that stores it.
    """
    settings, keys = request.app[SETTINGS], request.app[DEVICE_KEYS]
    try:
        proof = RequestProof.from_headers(request.headers)
    except DecodeError as error:
        raise AuthenticationError(str(error), "unsigned") from None
    key = keys.get(proof.device)
    if key is None:
        read = await request.app[STORE].run(devices.device, proof.device)
        found = devices.in_standing(read, proof.device)
        key = keys.setdefault(found.id, found.key)
    try:
        verify_request(
            proof, key, request.method, request.path_qs, body,
            now_ms=settings.clock(), window_ms=settings.auth_window_ms,
        )  # fmt: skip
    except StaleRequestError as error:
        raise AuthenticationError(str(error), "stale") from None
    except SignatureError as error:
        raise AuthenticationError(str(error), "bad_signature") from None
    return Signed(proof.device, Nonce(proof.nonce, settings.auth_window_ms), key)


async def _in_standing(
    session: Session,
    signed: Signed,
    now_ms: int,
    work: Callable[..., Awaitable[T]],
    args: tuple[object, ...],
) -> T:
    await devices.admit(session, signed.device, signed.nonce, now_ms)
    return await work(session, *args)


async def _admitted(
    request: web.Request,
    signed: Signed,
    work: Callable[..., Awaitable[T]],
    *args: object,
) -> T:
    """Run `work(session, *args)` for a signed request in the transaction that admits its
    device."""
    now_ms = request.app[SETTINGS].clock()
    return await request.app[STORE].run(_in_standing, signed, now_ms, work, args)


def _cbor(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=CBOR)


async def enroll(request: web.Request) -> web.Response:
    settings, store = request.app[SETTINGS], request.app[STORE]
    enroll_request = decode_enroll_request(await request.read())
    enrollment = await store.run(_enroll, enroll_request, settings.clock())
    return _cbor(encode_enrollment(enrollment))


async def _enroll(session: Session, enroll_request: EnrollRequest, now_ms: int) -> Enrollment:
    device = await devices.enroll(session, enroll_request.token, enroll_request.public_key, now_ms)
    config = await publishing.config_package(session, now_ms)
    keys = await publishing.trusted_keys(session)
    return Enrollment(device.id, device.kind, tuple(keys), now_ms, encode_package(config))


async def batches(request: web.Request) -> web.Response:
    settings, store = request.app[SETTINGS], request.app[STORE]
    started = time.perf_counter()
    body = await request.read()
    signed = await authenticate(request, body)
    message = decode_message(body)
    if not isinstance(message, Batch):
        raise MalformedRequestError(f"expected a batch, got a {type(message).__name__.lower()}")
    if message.device != signed.device:
        raise AuthenticationError(
            f"{signed.device} cannot send {message.device}'s records", "bad_signature"
        )
    known = request.app[LEDGER].known
    now_ms = settings.clock()
    result = await ingest(store, settings.books, message, now_ms, known, signed.nonce, signed.key)
    request.app[METRICS].batch(result, time.perf_counter() - started)
    status = 200 if isinstance(result.answer, Ack) else 409
    return _cbor(encode_message(result.answer), status)


def _checksum(raw: str | None) -> bytes | None:
    """The state checksum a package request names: 64 hex digits, or absent."""
    if raw is None:
        return None
    if len(raw) != 64 or not all(c in "0123456789abcdefABCDEF" for c in raw):
        raise MalformedRequestError(f"checksum is 64 hex digits, got {raw[:80]!r}")
    return bytes.fromhex(raw)


async def packages(request: web.Request) -> web.Response:
    signed = await authenticate(request, b"")
    raw = request.query.get("have", "0")
    have = whole_number(raw, MAX_SEQ)
    try:
        kind = PackageKind(request.match_info["kind"])
    except ValueError:
        raise MalformedRequestError(f"no package kind {request.match_info['kind']!r}") from None
    if have is None:
        raise MalformedRequestError(f"have is a version from 0 to 2**63-1, got {raw!r}")
    checksum = _checksum(request.query.get("checksum"))
    now_ms = request.app[SETTINGS].clock()
    snapshots = request.app[SNAPSHOTS]
    package = await _admitted(
        request, signed, publishing.package_for, signed.device, kind, have, checksum, now_ms,
        snapshots,
    )  # fmt: skip
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
    signed = await authenticate(request, b"")
    chain = await _admitted(request, signed, publishing.endorsements)
    return _cbor(encode_endorsements(chain))


async def heartbeat(request: web.Request) -> web.Response:
    body = await request.read()
    signed = await authenticate(request, body)
    beat = decode_heartbeat(body)
    if beat.device != signed.device:
        raise AuthenticationError(
            f"{signed.device} cannot report for {beat.device}", "bad_signature"
        )
    now_ms = request.app[SETTINGS].clock()
    await _admitted(request, signed, _keep_heartbeat, signed.device, now_ms, body)
    return web.Response(status=204)


async def _keep_heartbeat(session: Session, device: str, now_ms: int, body: bytes) -> None:
    await session.execute(
        "INSERT INTO heartbeats (device, received_ms, body) VALUES ($1, $2, $3) "
        "ON CONFLICT (device) DO UPDATE SET received_ms = excluded.received_ms, "
        "body = excluded.body",
        device, now_ms, body,
    )  # fmt: skip


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
