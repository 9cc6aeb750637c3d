"""Several server processes sharing one store (a PostgreSQL database, or one SQLite file)
never post a tap twice, even when they migrate a new store at the same moment."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from farebox.server.ledger.book import Ledger
from farebox.server.ledger.store import Session, open_store
from tests.server.conftest import ALMATY
from tests.server.posting_worker import BATCH_SIZE, BATCHES

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


async def test_two_processes_posting_the_same_batches_at_once(store_url: str) -> None:
    start_at = time.time() + 5  # both workers are imported and connected by then
    workers = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.server.posting_worker", store_url),
            *(str(start_at), order),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for order in ("forward", "backward")
    ]
    results = []
    try:
        for worker in workers:
            out, err = await asyncio.wait_for(worker.communicate(), timeout=180)
            assert worker.returncode == 0, err.decode()
            results.append(json.loads(out))
    finally:  # a failed worker leaves none running behind it
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.communicate()

    total = BATCHES * BATCH_SIZE
    assert all(r["fresh"] + r["repeated"] == total for r in results)
    assert sum(r["fresh"] for r in results) == total  # each tap posted by exactly one
    if store_url.startswith("postgresql"):
        # Both worked at the same time. (On SQLite the writers' turn is not handed out in
        # order: a process that lets it go may take it again first, and post them all.)
        assert min(r["fresh"] for r in results) > 0, results

    store = await open_store(store_url)
    try:

        async def fares(session: Session) -> int:
            ((count,),) = await session.fetch("SELECT count(*) FROM transfers WHERE kind = 'fare'")
            return int(count)

        assert await store.run(fares) == total
        assert await Ledger(store, ALMATY).violations() == []
    finally:
        await store.close()
