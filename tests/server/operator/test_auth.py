"""The operator API opens only to its bearer token, and stays closed without one."""

from __future__ import annotations

import json
import re

import aiohttp
from aiohttp.test_utils import TestServer

from farebox.server.http.app import create_app
from farebox.server.http.openapi import OPERATOR_PATHS
from farebox.server.http.state import Settings
from farebox.server.sync.fares import Books
from tests.server.conftest import ALMATY, Clock
from tests.server.operator.conftest import TOKEN, Operator
from tests.server.sync.conftest import Device


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def _refusal(http: aiohttp.ClientSession, method: str, url: str, **headers: str) -> str:
    async with http.request(method, url, headers=headers) as response:
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        code: str = json.loads(await response.read())["code"]
        return code


async def test_every_operator_route_refuses_a_missing_or_wrong_token(
    operator: Operator, http: aiohttp.ClientSession
) -> None:
    wrong: tuple[dict[str, str], ...] = (
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    )
    for path, operations in OPERATOR_PATHS.items():
        for method in operations:
            url = f"{operator.url}{_concrete(path).lstrip('/')}"
            for headers in wrong:
                assert await _refusal(http, method.upper(), url, **headers) == "operator_token"


async def test_device_signatures_open_nothing_of_the_operator_api(
    operator: Operator, device: Device
) -> None:
    status, body, _ = await device.request("GET", "/api/v1/devices")
    assert (status, json.loads(body)["code"]) == (401, "operator_token")


async def test_without_a_configured_token_the_api_is_closed(
    store_url: str, clock: Clock, http: aiohttp.ClientSession
) -> None:
    app = create_app(Settings(db=store_url, books=Books(ALMATY), clock=clock))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url("/api/v1/stoplist"))
        for given in ("Bearer ", "Bearer anything", f"Bearer {TOKEN}"):
            assert await _refusal(http, "GET", url, Authorization=given) == "operator_token"
    finally:
        await server.close()
