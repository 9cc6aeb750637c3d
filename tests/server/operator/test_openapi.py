"""The OpenAPI document describes exactly the routes the application serves."""

from __future__ import annotations

import json

from farebox.server.http.app import create_app
from farebox.server.http.openapi import document
from farebox.server.http.state import Settings
from farebox.server.sync.fares import Books
from tests.server.conftest import ALMATY
from tests.server.operator.conftest import Operator


def test_every_registered_route_is_documented_and_nothing_else() -> None:
    app = create_app(Settings(db="sqlite:///unused.db", books=Books(ALMATY)))
    # aiohttp adds HEAD beside each GET by itself; HEAD answers like GET without a body.
    registered = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    described = {
        (method, path) for path, operations in document()["paths"].items() for method in operations
    }
    assert registered == described


def test_every_operation_has_a_summary_responses_and_security() -> None:
    spec = document()
    assert spec["openapi"].startswith("3.1")
    schemes = set(spec["components"]["securitySchemes"])
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"], (method, path)
            assert operation["responses"], (method, path)
            for requirement in operation["security"]:
                assert set(requirement) <= schemes
            if path.startswith("/api/v1/"):
                assert operation["security"] == [{"operatorToken": []}]


async def test_the_document_is_served_without_a_token(operator: Operator) -> None:
    async with operator.http.get(f"{operator.url}openapi.json") as response:
        assert response.status == 200
        assert json.loads(await response.read()) == document()
