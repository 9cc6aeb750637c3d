"""A package request's kind and version: anything but a kind and a 64-bit version in ASCII
digits is a 400, never a 500 or a misleading answer."""

from __future__ import annotations

import json

import pytest

from farebox.protocol.packages import decode_package
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.stoplist import BlockReason
from tests.server.conftest import ALMATY
from tests.server.sync.conftest import Device, Server


@pytest.mark.parametrize(
    "query",
    ["stoplist?have=-1", "stoplist?have=%D9%A3", "stoplist?have=%203",
     "stoplist?have=99999999999999999999", "stoplist?have=9223372036854775808", "tram?have=0"],
)  # fmt: skip
async def test_a_malformed_package_request_is_a_400(device: Device, query: str) -> None:
    status, body, _ = await device.request("GET", f"/v1/packages/{query}")
    assert (status, json.loads(body)["code"]) == (400, "malformed")


async def test_a_version_the_server_never_published_gets_the_list_it_has(
    server: Server, device: Device
) -> None:
    largest = "/v1/packages/stoplist?have=9223372036854775807"
    status, body, _ = await device.request("GET", largest)
    assert (status, json.loads(body)["code"]) == (404, "no_package")  # no list yet
    await Ledger(server.store, ALMATY).block("nfc:01", BlockReason.LOST)
    status, body, _ = await device.request("GET", largest)
    assert status == 200
    package = decode_package(body)
    assert (package.version, package.is_delta) == (1, False)
