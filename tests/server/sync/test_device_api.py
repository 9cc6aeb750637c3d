"""The device API end to end over real HTTP on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import sqlite3

import aiohttp
import asyncpg
import pytest
import yarl
from pytest_mock import MockerFixture

from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.enrollment import EnrollRequest, encode_enroll_request
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import (
    Ack,
    Batch,
    Refusal,
    RefusalCode,
    decode_message,
    encode_message,
)
from farebox.protocol.package_keys import decode_endorsements, trusted_after
from farebox.protocol.packages import PackageKind, decode_package
from farebox.protocol.records import EncodedRecord
from farebox.server.ledger import reads
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.stoplist import BlockReason
from farebox.server.ledger.store import Session
from farebox.server.sync import devices, publishing
from farebox.server.sync.ingest import RECORD_COLUMNS, record_rows
from tests.server.conftest import ALMATY
from tests.server.sync.conftest import CBOR, Device, Server
from tests.support.records import chain


def batch(device: Device, entries: list[EncodedRecord], key: SigningKey | None = None) -> bytes:
    last = entries[-1]
    checkpoint = Checkpoint(device.id, last.record.seq, last.digest, device.server.clock())
    signed = sign_checkpoint(checkpoint, key or device.key)
    return encode_message(Batch(device.id, tuple(entries), signed))


async def count(server: Server, sql: str) -> int:
    async def work(session: Session) -> int:
        ((value,),) = await session.fetch(sql)
        return int(value)

    return await server.store.run(work)


async def test_enroll_then_sync_posts_every_tap_once(server: Server, device: Device) -> None:
    journal = chain(device=device.id, count=9)
    status, body, headers = await device.request("POST", "/v1/batches", batch(device, journal))
    assert status == 200
    ack = decode_message(body)
    assert isinstance(ack, Ack)
    assert ack.cursor.seq == 9
    assert "Farebox-Server-Time" in headers
    fares = await count(server, "SELECT count(*) FROM transfers WHERE kind = 'fare'")
    assert fares == 6  # seq 1 is a boot; 4 and 8 are denied taps
    assert await count(server, "SELECT count(*) FROM records") == 9
    # The same batch again, and an overlapping one: same answer, nothing posted twice.
    status, again, _ = await device.request("POST", "/v1/batches", batch(device, journal))
    assert (status, decode_message(again)) == (200, ack)
    status, _, _ = await device.request("POST", "/v1/batches", batch(device, journal[4:]))
    assert status == 200
    assert await count(server, "SELECT count(*) FROM transfers WHERE kind = 'fare'") == 6


async def test_gaps_forks_and_forged_checkpoints_are_refused_with_the_cursor(
    server: Server, device: Device
) -> None:
    journal = chain(device=device.id, count=6)
    await device.request("POST", "/v1/batches", batch(device, journal[:2]))
    status, body, _ = await device.request("POST", "/v1/batches", batch(device, journal[3:]))
    refusal = decode_message(body)
    assert status == 409
    assert isinstance(refusal, Refusal)
    assert refusal.code is RefusalCode.GAP
    assert refusal.cursor is not None
    assert refusal.cursor.seq == 2
    other = chain(device=device.id, count=3, time_ms=1)
    status, body, _ = await device.request("POST", "/v1/batches", batch(device, other))
    assert (status, decode_message(body).code) == (409, RefusalCode.FORK)  # type: ignore[union-attr]
    forged = batch(device, journal[2:], SigningKey.generate())
    status, body, _ = await device.request("POST", "/v1/batches", forged)
    assert (status, decode_message(body).code) == (409, RefusalCode.BAD_SIGNATURE)  # type: ignore[union-attr]
    assert await count(server, "SELECT count(*) FROM records") == 2
    assert await count(server, "SELECT refusals FROM devices") == 3


async def problem(response: aiohttp.ClientResponse) -> tuple[int, str]:
    document = json.loads(await response.read())
    assert response.content_type == "application/problem+json"
    return response.status, document["code"]


async def test_bad_requests_get_401_or_400_and_store_nothing(
    server: Server, device: Device, http: aiohttp.ClientSession
) -> None:
    body = batch(device, chain(device=device.id, count=2))
    url = f"{server.url}v1/batches"
    async with http.post(url, data=body, headers=CBOR) as response:
        assert await problem(response) == (401, "unsigned")
    headers = device.headers("POST", "/v1/batches", body)
    async with http.post(url, data=body + b"x", headers=headers) as response:
        assert await problem(response) == (401, "bad_signature")
    async with http.post(url, data=body, headers=headers) as response:
        assert response.status == 200
    async with http.post(url, data=body, headers=headers) as response:
        assert await problem(response) == (401, "replay")
    stale = device.headers("POST", "/v1/batches", body, skew_ms=-3_600_000)
    async with http.post(url, data=body, headers=stale) as response:
        assert await problem(response) == (401, "stale")
        assert abs(int(response.headers["Farebox-Server-Time"]) - server.clock()) < 60_000
    garbage = b"\xff\x00 not cbor"
    async with http.post(
        url, data=garbage, headers=device.headers("POST", "/v1/batches", garbage)
    ) as response:
        assert await problem(response) == (400, "malformed")
    huge = b"\x00" * (9 * 1024 * 1024)
    headers = device.headers("POST", "/v1/batches", huge)
    async with http.post(url, data=io.BytesIO(huge), headers=headers) as response:
        assert (await problem(response))[0] == 413
    assert await count(server, "SELECT count(*) FROM records") == 2


async def test_unknown_and_revoked_devices_are_refused(
    server: Server, device: Device, http: aiohttp.ClientSession
) -> None:
    stranger = Device(server, http)
    stranger.id = "bus-999"
    status, body, _ = await stranger.request("POST", "/v1/heartbeat", b"")
    assert (status, json.loads(body)["code"]) == (401, "unknown_device")
    await server.store.run(lambda s: devices.revoke(s, device.id, server.clock()))
    journal = chain(device=device.id, count=2)
    status, body, _ = await device.request("POST", "/v1/batches", batch(device, journal))
    assert (status, json.loads(body)["code"]) == (401, "revoked")


async def test_a_device_revoked_after_it_synced_is_refused_and_nothing_is_stored(
    server: Server, device: Device
) -> None:
    # The server keeps the keys of devices it has seen; revocation is checked anyway, in
    # the transaction that would serve the request.
    journal = chain(device=device.id, count=4)
    status, _, _ = await device.request("POST", "/v1/batches", batch(device, journal[:2]))
    assert status == 200
    await server.store.run(lambda s: devices.revoke(s, device.id, server.clock()))
    status, body, _ = await device.request("POST", "/v1/batches", batch(device, journal[2:]))
    assert (status, json.loads(body)["code"]) == (401, "revoked")
    status, body, _ = await device.request("GET", "/v1/packages/config", b"")
    assert (status, json.loads(body)["code"]) == (401, "revoked")
    assert await count(server, "SELECT count(*) FROM records") == 2
    assert await count(server, "SELECT count(*) FROM heartbeats") == 0


async def test_an_enrollment_token_works_once(server: Server, http: aiohttp.ClientSession) -> None:
    token = await server.token("gate-3")
    first = Device(server, http)
    await first.enroll(token)
    second = Device(server, http)
    body = encode_enroll_request(EnrollRequest(token, second.key.verify_key))
    async with http.post(f"{server.url}v1/enroll", data=body, headers=CBOR) as response:
        assert await problem(response) == (403, "enrollment_token")


async def test_config_package_comes_with_enrollment_and_then_not_modified(
    server: Server, device: Device
) -> None:
    status, body, headers = await device.request("GET", "/v1/packages/config?have=0")
    assert status == 200
    package = decode_package(body)
    assert package.kind is PackageKind.CONFIG
    assert headers["ETag"] == f'"config-{package.version}"'
    status, _, _ = await device.request("GET", f"/v1/packages/config?have={package.version}")
    assert status == 304
    status, body, _ = await device.request("GET", "/v1/packages/tariff?have=0")
    assert (status, json.loads(body)["code"]) == (404, "no_package")


async def test_the_whole_stoplist_is_made_once_per_version_for_the_devices_that_ask(
    server: Server, device: Device, mocker: MockerFixture
) -> None:
    """Reading, encoding and signing a million tokens takes seconds: the whole list made
    for one device serves the next that asks for the same version; a change makes anew."""
    ledger = Ledger(server.store, ALMATY)
    await ledger.block("nfc:01", BlockReason.LOST)
    read = mocker.spy(reads, "stoplist_tokens")
    second = Device(server, device.http)
    await second.enroll(await server.token("bus-018"))

    bodies = [
        (await bus.request("GET", "/v1/packages/stoplist?have=0"))[1] for bus in (device, second)
    ]
    assert bodies[0] == bodies[1]
    assert decode_package(bodies[0]).version == 1
    assert read.call_count == 1

    await ledger.block("nfc:02", BlockReason.STOLEN)
    status, body, _ = await device.request("GET", "/v1/packages/stoplist?have=0")
    assert (status, decode_package(body).version, read.call_count) == (200, 2, 2)
    status, body, _ = await second.request("GET", "/v1/packages/stoplist?have=1")
    assert decode_package(body).is_delta  # one token changed, of two: a delta, not the list
    assert read.call_count == 2


async def test_a_truncated_body_stores_nothing_and_the_resend_is_taken(
    server: Server, device: Device
) -> None:
    body = batch(device, chain(device=device.id, count=5))
    headers = device.headers("POST", "/v1/batches", body)
    url = yarl.URL(server.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(
        f"POST /v1/batches HTTP/1.1\r\nHost: {url.host}\r\nContent-Length: {len(body)}\r\n"
        f"{head}\r\n".encode()
        + body[: len(body) // 2]
    )
    await writer.drain()
    writer.close()  # the connection drops half-way, as on a bus leaving the depot
    await writer.wait_closed()
    del reader
    await asyncio.sleep(0.2)
    assert await count(server, "SELECT count(*) FROM records") == 0
    status, answer, _ = await device.request("POST", "/v1/batches", body)
    assert status == 200
    assert isinstance(decode_message(answer), Ack)
    assert await count(server, "SELECT count(*) FROM records") == 5


async def test_enrollment_tokens_never_look_like_command_line_options(server: Server) -> None:
    tokens = [await server.token(f"bus-{n:03d}") for n in range(64)]
    assert all(token.startswith("fbe_") for token in tokens)
    assert len(set(tokens)) == len(tokens)


async def test_the_database_keeps_records_tied_to_devices_it_never_deletes(
    server: Server, device: Device
) -> None:
    """A record of no enrolled device cannot be stored, and a device with records stays."""
    status, _, _ = await device.request("POST", "/v1/batches", batch(device, chain(device.id, 2)))
    assert status == 200

    async def orphan(session: Session) -> None:
        (entry,) = chain(device="bus-999", count=1)
        rows = record_rows("bus-999", [entry], server.clock())
        await session.insert_rows("records", RECORD_COLUMNS, rows)

    async def delete(session: Session) -> None:
        await session.execute("DELETE FROM devices WHERE id = $1", device.id)

    for refused in (orphan, delete):
        with pytest.raises((sqlite3.IntegrityError, asyncpg.PostgresError)):
            await server.store.run(refused)
    assert await count(server, "SELECT count(*) FROM records") == 2


async def test_rotated_package_keys_reach_an_enrolled_device_through_endorsements(
    server: Server, http: aiohttp.ClientSession
) -> None:
    bus = Device(server, http)
    enrollment = await bus.enroll(await server.token("bus-018"))
    # Two rotations within one millisecond, and one after the clock went back a minute:
    # each new key still comes after the key that endorsed it, and signs from then on.
    now = server.clock()
    made = []
    for at in (now, now, now - 60_000):
        key = await server.store.run(functools.partial(publishing.rotate_key, now_ms=at))
        newest = await server.store.run(lambda session: publishing.signing_key(session, 0))
        assert newest.key_id == key.key_id
        made.append(key.verify_key)
    status, body, _ = await bus.request("GET", "/v1/package-keys", b"")
    assert status == 200
    trusted = trusted_after(enrollment.package_keys, decode_endorsements(body))
    assert trusted == (*enrollment.package_keys, *made)
    stranger = Device(server, http)
    stranger.id = "bus-999"
    status, _, _ = await stranger.request("GET", "/v1/package-keys", b"")
    assert status == 401  # enrolled devices only
