"""The uploader against a real HTTP server on 127.0.0.1: every record acknowledged and
stored exactly once through server errors, a lost answer, a server restored from a backup,
a wrong clock; halted on a fork, stopped when revoked."""

from __future__ import annotations

import asyncio
import logging

import pytest

from farebox.agent.sync.report import read_sync_report
from farebox.protocol.chain import Cursor
from tests.agent.harness import until
from tests.agent.sync.conftest import DEVICE, Validator
from tests.agent.sync.server import DROP, SLOW, SyncServer

BATCHES = "/v1/batches"


def stored_once(server: SyncServer, through: int) -> bool:
    return (
        all(server.stored[DEVICE, seq] == 1 for seq in range(1, through + 1))
        and len(server.stored) == through
    )


async def test_records_are_uploaded_in_batches_and_acked(
    server: SyncServer, validator: Validator
) -> None:
    await validator.taps(120)
    validator.start()
    await until(lambda: server.devices[DEVICE].cursor.seq == 120)
    await until(lambda: validator.store.acked.seq == 120)
    await validator.halt()
    assert stored_once(server, 120)
    assert len(server.posts(BATCHES)) == 3  # at most 50 records a batch
    assert (await validator.on_store(validator.store.figures)).unacked == 0


async def test_server_errors_are_retried_with_backoff(
    server: SyncServer, validator: Validator, caplog: pytest.LogCaptureFixture
) -> None:
    server.fail(BATCHES, 500, (401, "replay"), 503)
    await validator.taps(60)
    with caplog.at_level(logging.WARNING, "farebox.agent.sync"):
        validator.start()
        await until(lambda: validator.store.acked.seq == 60)
        await validator.halt()
    assert stored_once(server, 60)
    assert len(server.posts(BATCHES)) == 3 + 2
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert [m.split("; retry ")[1].split(" ")[0] for m in retries] == ["1", "2", "3"]
    # Full jitter: each wait is drawn below a cap that doubles, here 0.02, 0.04, 0.08 s.
    waits = [float(m.split(" in ")[1].split(" ")[0]) for m in retries]
    assert all(w <= cap + 0.05 for w, cap in zip(waits, (0.02, 0.04, 0.08), strict=True))
    # What a retry waits out is in `status` while it lasts: here the last of them.
    report = read_sync_report(validator.directory)
    assert report is not None
    assert "answered 503" in str(report["last_error"])


async def test_a_lost_answer_is_resent_and_acked_again(
    server: SyncServer, validator: Validator
) -> None:
    server.fail(BATCHES, DROP)
    await validator.taps(30)
    validator.start()
    await until(lambda: validator.store.acked.seq == 30)
    await validator.halt()
    assert stored_once(server, 30)  # the server took the first copy and acked the second
    assert len(server.posts(BATCHES)) == 2


async def test_a_slow_server_is_given_up_on_and_the_batch_sent_again_once(
    server: SyncServer, validator: Validator
) -> None:
    server.fail(BATCHES, SLOW)
    await validator.taps(30)
    validator.start()
    await until(lambda: validator.store.acked.seq == 30, seconds=20)
    await validator.halt()
    assert stored_once(server, 30)  # stored by the slow first try, acked on the second
    assert len(server.posts(BATCHES)) >= 2


async def test_a_server_restored_from_a_backup_gets_the_lost_records_again(
    server: SyncServer, validator: Validator
) -> None:
    entries = await validator.taps(10)
    validator.start()
    await until(lambda: validator.store.acked.seq == 10)
    # The server loses records 5..10, which it had acknowledged.
    server.devices[DEVICE].cursor = Cursor(4, entries[3].digest)
    for seq in range(5, 11):
        del server.stored[DEVICE, seq]
    await validator.taps(5)
    await until(lambda: validator.store.acked.seq == 15)
    await validator.halt()
    assert stored_once(server, 15)
    assert server.devices[DEVICE].cursor.seq == 15


async def test_a_fork_halts_uploads_and_keeps_every_record(
    server: SyncServer, validator: Validator
) -> None:
    await validator.taps(5)
    validator.start()
    await until(lambda: validator.store.acked.seq == 5)
    server.devices[DEVICE].cursor = Cursor(5, b"\x01" * 32)  # someone else's record 5
    await validator.taps(3)
    await until(
        lambda: (read_sync_report(validator.directory) or {}).get("state") == "uploads_halted"
    )
    report = read_sync_report(validator.directory) or {}
    assert "fork" in str(report["halted"])
    beats = len(server.heartbeats)
    await until(lambda: len(server.heartbeats) > beats)  # the rest of the sync goes on
    await validator.halt()
    figures = await validator.on_store(validator.store.figures)
    assert (figures.acked_seq, figures.unacked, figures.kept) == (5, 3, 8)


async def test_a_wrong_clock_is_corrected_from_the_server_time(
    server: SyncServer, validator: Validator
) -> None:
    server.skew_ms = 3_600_000  # the server is an hour ahead: every first request is stale
    await validator.on_store(validator.store.set_clock_offset_ms, 0)
    await validator.taps(3)
    validator.start()
    await until(lambda: validator.store.acked.seq == 3)
    await validator.halt()
    assert validator.offsets
    assert abs(validator.offsets[-1] - 3_600_000) < 1_000
    stored = await validator.on_store(validator.store.clock_offset_ms)
    assert stored is not None
    assert abs(stored - 3_600_000) < 1_000


async def test_a_revoked_device_stops_syncing(server: SyncServer, validator: Validator) -> None:
    server.devices[DEVICE].revoked = True
    await validator.taps(3)
    task = validator.start()
    await until(task.done)
    task.result()
    report = read_sync_report(validator.directory) or {}
    assert report["state"] == "refused"
    assert "revoked" in str(report["last_error"])
    assert (await validator.on_store(validator.store.figures)).unacked == 3
    assert not server.stored


async def test_a_batch_over_the_size_limit_is_sent_in_halves(
    server: SyncServer, validator: Validator
) -> None:
    server.fail(BATCHES, 413, 413)
    await validator.taps(50)
    validator.start()
    await until(lambda: validator.store.acked.seq == 50)
    await validator.halt()
    assert stored_once(server, 50)
    assert len(server.posts(BATCHES)) == 2 + 5  # 50 refused, 25 refused, 12+12+12+12+2


async def test_a_malformed_answer_halts_uploads(server: SyncServer, validator: Validator) -> None:
    server.fail(BATCHES, (400, "malformed"))
    await validator.taps(3)
    validator.start()
    await until(
        lambda: (read_sync_report(validator.directory) or {}).get("state") == "uploads_halted"
    )
    await validator.halt()
    assert len(server.posts(BATCHES)) == 1
    assert (await validator.on_store(validator.store.figures)).unacked == 3


async def test_an_upload_outage_keeps_its_first_time_while_heartbeats_get_through(
    server: SyncServer, validator: Validator
) -> None:
    server.fail(BATCHES, *([503] * 12))
    await validator.taps(3)
    validator.start()
    seen: set[object] = set()
    for _ in range(500):  # 10 s at most
        if validator.store.acked.seq == 3:
            break
        await asyncio.sleep(0.02)
        report = read_sync_report(validator.directory) or {}
        if "batches" in str(report.get("last_error")):
            seen.add(report["last_error_ms"])
    await validator.halt()
    assert validator.store.acked.seq == 3
    assert len(server.heartbeats) > 0  # they went through meanwhile
    assert len(seen) == 1  # one outage, one time: the first retry's
