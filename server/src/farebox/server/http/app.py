"""The aiohttp application: one factory, typed state, resources opened by cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from farebox.server.http import device_api, operator_api, pages
from farebox.server.http.metrics import Metrics
from farebox.server.http.problems import problems
from farebox.server.http.settlement_task import settlement_task
from farebox.server.http.state import (
    DEVICE_KEYS,
    LEDGER,
    METRICS,
    SETTINGS,
    SNAPSHOTS,
    STORE,
    Settings,
)
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.store import Store, open_store
from farebox.server.sync.publishing import Snapshots


async def _own_store(app: web.Application) -> AsyncIterator[None]:
    store = await open_store(app[SETTINGS].db)
    try:
        # Migrations are versioned and idempotent; `farebox-server init` runs them ahead
        # of a deployment, and this makes a fresh embedded store work on first start.
        await store.migrate()
        app[STORE] = store
        yield
    finally:
        await store.close()


async def _ledger(app: web.Application) -> AsyncIterator[None]:
    # Made once the store is open (it may be opened by `_own_store` just before).
    settings = app[SETTINGS]
    books = settings.books
    app[LEDGER] = Ledger(
        app[STORE], books.policy, credit_limit=books.credit_limit, clock=settings.clock
    )
    yield


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    """The sync server's application over `store`, or over one it opens from `settings.db`."""
    app = web.Application(middlewares=[problems], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[DEVICE_KEYS] = {}
    app[SNAPSHOTS] = Snapshots()
    if store is None:
        app.cleanup_ctx.append(_own_store)
    else:
        app[STORE] = store
    app.cleanup_ctx.append(_ledger)
    app.cleanup_ctx.append(settlement_task)
    device_api.add_routes(app)
    operator_api.add_routes(app)
    pages.add_routes(app)
    return app
