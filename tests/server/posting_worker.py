"""One server process posting a fixed set of tap batches, for the concurrency test.

    python -m tests.server.posting_worker STORE_URL START_AT_EPOCH_SECONDS forward|backward

It waits until the given moment (so that two workers start together), posts every batch,
and prints how many taps it posted fresh and how many it found already posted, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from farebox.server.ledger.book import Ledger
from farebox.server.ledger.posting import FareTap
from farebox.server.ledger.store import open_store
from tests.server.conftest import ALMATY
from tests.server.helpers import at, tap

BATCHES = 40
BATCH_SIZE = 50


def batches() -> list[list[FareTap]]:
    """The same batches in every worker: 2,000 taps of 30 riders on 5 buses."""
    return [
        [
            tap(f"bus-{n % 5}", n // 5 + 1, f"nfc:{n % 30:02x}", at(2, "07:00") + n * 1000)
            for n in range(start, start + BATCH_SIZE)
        ]
        for start in range(0, BATCHES * BATCH_SIZE, BATCH_SIZE)
    ]


async def post_all(dsn: str, start_at: float, order: str) -> dict[str, int]:
    store = await open_store(dsn)
    try:
        await store.migrate()
        ledger = Ledger(store, ALMATY)
        todo = batches() if order == "forward" else batches()[::-1]
        await asyncio.sleep(max(0.0, start_at - time.time()))
        fresh = repeated = 0
        for batch in todo:
            result = await ledger.post_taps(batch)
            fresh += result.fresh
            repeated += result.repeated
        return {"fresh": fresh, "repeated": repeated}
    finally:
        await store.close()


if __name__ == "__main__":
    dsn, start_at, order = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    sys.stdout.write(json.dumps(asyncio.run(post_all(dsn, start_at, order))) + "\n")
