"""The dashboard page is served to anyone; its data comes from the operator API."""

from __future__ import annotations

from tests.server.operator.conftest import Operator


async def test_the_dashboard_page_is_served_and_calls_the_operator_api(operator: Operator) -> None:
    async with operator.http.get(operator.url) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
    assert "<title>farebox dashboard</title>" in page
    for path in ("/api/v1/devices", "/api/v1/reports/sync-lag", "/api/v1/reports/revenue"):
        assert path in page
