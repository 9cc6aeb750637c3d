"""How a server process runs Python's cyclic garbage collector.

Ingest makes and drops some ten thousand small objects per batch of 500 records (records,
taps, transfers, rows), and the records of batches in flight live long enough to be
promoted, so the collector's default thresholds (a young collection every 700 net
allocations) ran about 800 young and 6 full collections per 50,000 records in each server
process: 0.4-0.5 s of its CPU, a tenth of it. Almost none of those objects are in cycles,
and reference counting frees them. So a server collects its young generation every
20,000 allocations and the older ones correspondingly less often, and leaves out of every
collection the objects it made while starting (modules, the application, its routes).
"""

from __future__ import annotations

import gc

YOUNG = 20_000
"""Net allocations of tracked objects between collections of the youngest generation."""
OLDER = 20
"""Collections of one generation between collections of the next."""


def tune_collector() -> None:
    """Set the server's collection thresholds and freeze what exists now (call once,
    when the process is ready to serve)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)
