"""The settlement task: closed fare days are settled in the background, every few minutes.

Each round loads every published tariff, makes the ledger's rater from them (each tap is
priced by the tariff in force at its time, as the validator that took it chose) and
settles every closed fare day that is due: days never settled, and days that a late tap
or a reversal changed since their last settlement (ARCHITECTURE section 8). A day that
cannot be rated is parked, logged, and left out until a tap, a reversal or a newer tariff
package could change that; the newest package's version numbers the rules it was parked
under. Several server processes may run it over one PostgreSQL: each
settlement claims the day's next revision, so only one of them posts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from farebox.server.http.state import LEDGER, METRICS, SETTINGS, STORE
from farebox.server.ledger.book import Settled
from farebox.server.ledger.tariff_rater import TariffRater
from farebox.server.sync import publishing

log = logging.getLogger(__name__)
DAYS_PER_CALL = 1000
CALLS_PER_ROUND = 100
"""A round settles at most this many pages of due days, so that it always ends."""


async def settle_due_days(app: web.Application) -> Settled:
    """Settle the closed fare days that are due with the published tariffs; say how many
    were settled and how many parked."""
    ledger = app[LEDGER]
    published = await app[STORE].read(publishing.published_tariffs)
    if not published:
        return Settled(0)  # nothing to rate with: the days stay due until a tariff is published
    rules = published[-1][0]
    rater = TariffRater(tuple(tariff for _, tariff in published), ledger.policy)
    settled = parked = 0
    for _ in range(CALLS_PER_ROUND):
        page = await ledger.settle_due(rater, limit=DAYS_PER_CALL, rules=rules)
        settled, parked = settled + page.settled, parked + page.parked
        if page.settled + page.parked < DAYS_PER_CALL:
            break
    return Settled(settled, parked)


async def _rounds(app: web.Application) -> None:
    every = app[SETTINGS].settle_every_s
    while True:
        await asyncio.sleep(every)
        try:
            done = await settle_due_days(app)
        except Exception:
            # A round that fails (the store away, a stored tariff that no longer decodes)
            # is logged and tried again next round; the task must outlive it.
            log.exception("fare-day settlement round failed")
            continue
        app[METRICS].settled_days += done.settled
        if done.settled or done.parked:
            log.info("settled %d fare days, parked %d", done.settled, done.parked)


async def settlement_task(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the settlement rounds while the application runs."""
    task = asyncio.create_task(_rounds(app), name="farebox-settlement")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
