"""The settlement task: closed fare days are settled in the background, every few minutes.

Each round loads the newest published tariff (the one validators quote with), makes the
ledger's rater from it and settles every closed fare day that is due: days never settled,
and days that a late tap or a reversal changed since their last settlement (ARCHITECTURE
section 8). Several server processes may run it over one PostgreSQL: each settlement
claims the day's next revision, so only one of them posts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from farebox.server.http.state import LEDGER, METRICS, SETTINGS, STORE
from farebox.server.ledger.tariff_rater import TariffRater
from farebox.server.sync import publishing

log = logging.getLogger(__name__)
DAYS_PER_CALL = 1000
CALLS_PER_ROUND = 100
"""A round settles at most this many pages of due days, so that it always ends."""


async def settle_due_days(app: web.Application) -> int:
    """Settle the closed fare days that are due with the published tariff; return how many."""
    ledger = app[LEDGER]
    tariff = await app[STORE].run(publishing.latest_tariff)
    if tariff is None:
        return 0  # nothing to rate with: the days stay due until a tariff is published
    rater = TariffRater.matching(tariff, ledger.policy)
    settled = 0
    for _ in range(CALLS_PER_ROUND):
        page = await ledger.settle_due(rater, limit=DAYS_PER_CALL)
        settled += page
        if page < DAYS_PER_CALL:
            break
    return settled


async def _rounds(app: web.Application) -> None:
    every = app[SETTINGS].settle_every_s
    while True:
        await asyncio.sleep(every)
        try:
            settled = await settle_due_days(app)
        except Exception:
            # A round that fails (the store away, a tariff that cannot rate a day) is
            # logged and tried again next round; the task itself must outlive it.
            log.exception("fare-day settlement round failed")
            continue
        app[METRICS].settled_days += settled
        if settled:
            log.info("settled %d fare days", settled)


async def settlement_task(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the settlement rounds while the application runs."""
    task = asyncio.create_task(_rounds(app), name="farebox-settlement")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
