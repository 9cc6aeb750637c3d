"""A package request's kind, version and checksum: anything but a kind, a 64-bit version in
ASCII digits and 64 hex digits is a 400, never a 500 or a misleading answer."""

from __future__ import annotations

import json

import pytest

from farebox.protocol.packages import decode_package
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.stoplist import BlockReason
from farebox.server.ledger.writes import RENUMBER_STEP
from tests.server.conftest import ALMATY
from tests.server.sync.conftest import Device, Server


@pytest.mark.parametrize(
    "query",
    ["stoplist?have=-1", "stoplist?have=%D9%A3", "stoplist?have=%203",
     "stoplist?have=99999999999999999999", "stoplist?have=9223372036854775808", "tram?have=0",
     "stoplist?have=1&checksum=" + "0" * 63, "stoplist?have=1&checksum=" + "g" * 64,
     "stoplist?have=1&checksum=" + "%20" + "0" * 63],
)  # fmt: skip
async def test_a_malformed_package_request_is_a_400(device: Device, query: str) -> None:
    status, body, _ = await device.request("GET", f"/v1/packages/{query}")
    assert (status, json.loads(body)["code"]) == (400, "malformed")


async def test_a_version_the_server_never_published_gets_the_list_it_has(
    server: Server, device: Device
) -> None:
    largest = "/v1/packages/stoplist?have=9223372036854775807"
    await Ledger(server.store, ALMATY).block("nfc:01", BlockReason.LOST)
    # Further ahead than a store restored from a backup can have lost: refused.
    status, body, _ = await device.request("GET", largest)
    assert (status, json.loads(body)["code"]) == (409, "stoplist_ahead")
    # A version it lost: the whole list, renumbered past the device's.
    status, body, _ = await device.request("GET", "/v1/packages/stoplist?have=7")
    assert status == 200
    package = decode_package(body)
    assert (package.version, package.is_delta) == (7 + RENUMBER_STEP, False)
