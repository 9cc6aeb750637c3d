"""What the server serves besides its two APIs: the dashboard, the API description, metrics.

None of them needs a token: the dashboard page holds no data (its script asks the
operator API, with the token the operator types), the OpenAPI document is public, and
Prometheus scrapes `/metrics` the way it scrapes every other target.
"""

from __future__ import annotations

import functools
from importlib.resources import files

from aiohttp import web

from farebox.server.http import openapi
from farebox.server.http.metrics import CONTENT_TYPE, Gauges
from farebox.server.http.state import METRICS, SETTINGS, STORE
from farebox.server.ledger import parking, reads
from farebox.server.ledger.store import Session
from farebox.server.sync import reports, set_aside


@functools.cache
def _dashboard() -> str:
    return files("farebox.server.http").joinpath("dashboard.html").read_text(encoding="utf-8")


async def dashboard(request: web.Request) -> web.Response:
    return web.Response(text=_dashboard(), content_type="text/html")


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


async def metrics(request: web.Request) -> web.Response:
    gauges = await request.app[STORE].read(_gauges, request.app[SETTINGS].clock())
    text = request.app[METRICS].render(gauges)
    # aiohttp refuses a charset inside content_type, so the header is set whole.
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


async def _gauges(session: Session, now_ms: int) -> Gauges:
    lags = reports.sync_lag(await reports.device_statuses(session), now_ms)
    return Gauges(
        await reads.stoplist_size(session),
        await parking.parked_days(session),
        await set_aside.set_aside_count(session),
        lags,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", dashboard)
    app.router.add_get("/openapi.json", openapi_document)
    app.router.add_get("/metrics", metrics)
