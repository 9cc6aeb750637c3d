"""The aiohttp application: one factory, typed state, resources opened by cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from farebox.server.http import device_api
from farebox.server.http.problems import problems
from farebox.server.http.state import SETTINGS, STORE, Settings
from farebox.server.ledger.store import Store, open_store


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


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    """The sync server's application over `store`, or over one it opens from `settings.db`."""
    app = web.Application(middlewares=[problems], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    if store is None:
        app.cleanup_ctx.append(_own_store)
    else:
        app[STORE] = store
    device_api.add_routes(app)
    return app
