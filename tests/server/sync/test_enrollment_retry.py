"""An enrollment retried with the same token and key (its answer lost) is answered again,
over real HTTP on 127.0.0.1, on SQLite and PostgreSQL; another key is still refused."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from farebox.protocol.enrollment import (
    DeviceKind,
    Enrollment,
    EnrollRequest,
    decode_enrollment,
    encode_enroll_request,
)
from farebox.protocol.keys import SigningKey
from farebox.server.sync import devices
from farebox.server.sync.errors import EnrollmentError
from tests.server.sync.conftest import CBOR, Device, Server


async def ask(server: Server, http: aiohttp.ClientSession, token: str, key: SigningKey) -> bytes:
    """POST an enroll request; expect 200; return the enrollment's bytes."""
    body = encode_enroll_request(EnrollRequest(token, key.verify_key))
    async with http.post(f"{server.url}v1/enroll", data=body, headers=CBOR) as response:
        assert response.status == 200, await response.text()
        return await response.read()


async def refused(server: Server, http: aiohttp.ClientSession, token: str, key: SigningKey) -> str:
    """POST an enroll request; expect 403 enrollment_token; return the detail."""
    body = encode_enroll_request(EnrollRequest(token, key.verify_key))
    async with http.post(f"{server.url}v1/enroll", data=body, headers=CBOR) as response:
        document = await response.json(content_type=None)
        assert (response.status, document["code"]) == (403, "enrollment_token"), document
        return str(document["detail"])


def same_device(first: Enrollment, again: Enrollment) -> None:
    assert (again.device, again.kind, again.package_keys) == (
        first.device, first.kind, first.package_keys,
    )  # fmt: skip
    assert again.config_package == first.config_package


async def test_a_retried_enrollment_with_the_same_key_is_answered_again(
    server: Server, http: aiohttp.ClientSession
) -> None:
    token, bus = await server.token("bus-017"), Device(server, http)
    first = decode_enrollment(await ask(server, http, token, bus.key))
    server.clock.now_ms += 7_200_000  # later than the token's hour: the device is enrolled
    same_device(first, await bus.enroll(token))
    status, _, _ = await bus.request("GET", "/v1/package-keys")
    assert status == 200  # the device the retry answered is the one enrolled, with its key
    detail = await refused(server, http, token, SigningKey.generate())
    assert detail == "this enrollment token was used already"
    (enrolled,) = await server.store.run(devices.devices)
    assert (enrolled.id, enrolled.key, enrolled.enrolled_ms) == (
        "bus-017", bus.key.verify_key, first.server_time_ms,
    )  # fmt: skip


async def test_two_requests_spending_one_token_with_one_key_both_enroll_it(
    server: Server, http: aiohttp.ClientSession
) -> None:
    token, key = await server.token("bus-017"), SigningKey.generate()
    answers = await asyncio.gather(*(ask(server, http, token, key) for _ in range(4)))
    first, *others = (decode_enrollment(answer) for answer in answers)
    for again in others:
        same_device(first, again)
    assert [d.id for d in await server.store.run(devices.devices)] == ["bus-017"]


async def test_a_revoked_device_is_not_enrolled_again_by_its_spent_token(
    server: Server, http: aiohttp.ClientSession
) -> None:
    token, bus = await server.token("bus-017"), Device(server, http)
    await bus.enroll(token)
    now = server.clock()
    await server.store.run(devices.revoke, "bus-017", now)
    assert await refused(server, http, token, bus.key) == "this enrollment token was used already"


async def test_a_name_stays_taken_and_the_refusal_says_what_to_do(
    server: Server, device: Device
) -> None:
    expected = (
        "a device 'bus-017' is enrolled already, and a device id stays taken even once revoked:"
        " enroll the validator under a new name, or, if its enrollment was cut short, run its"
        " enroll again with the same token"
    )
    with pytest.raises(EnrollmentError) as caught:
        await server.token("bus-017")
    assert str(caught.value) == expected
    now = server.clock()
    await server.store.run(devices.revoke, "bus-017", now)
    with pytest.raises(EnrollmentError) as caught:
        await server.token("bus-017", DeviceKind.GATE)
    assert str(caught.value) == expected
    assert (await server.token("bus-017b")).startswith(devices.TOKEN_PREFIX)
