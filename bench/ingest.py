"""Sync server ingest: signed batches from many devices over real HTTP, and a storm.

Real `farebox-server run` processes on 127.0.0.1 (one, then two sharing the port with
`--reuse-port`) take batches of signed records from simulated devices (the load
generator is this process, on the same 2 cores), on SQLite and on PostgreSQL (a
throwaway cluster, as the tests make). A batch is as full as an agent sends a backlog
(`sync.max_batch_records`, 1,000 by default), a device's last one smaller. Ceiling,
measured in the same run on a fresh store of the same kind: the bare storage write of the
same rows (raw records plus fare postings through the ledger's own writes, the rows made
beforehand, as many batches in flight as the uploads) with no HTTP, decoding, signature or
chain checks, nor the making of the postings. Every device uploads as an agent does, one
batch in flight at a time, and all devices at once: the steady ingest's 40 buses with
2,500 records each, then the reconnect storm's 300 with a day's 1,500 each (with --quick:
20 x 1,000, then 60 x 500).

    .venv/bin/python -m bench.ingest [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.table import Row, render
from farebox.agent.sync.settings import SyncConfig
from farebox.protocol.auth import sign_request
from farebox.protocol.chain import Cursor
from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.enrollment import DeviceKind, EnrollRequest, encode_enroll_request
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import Batch, encode_message
from farebox.protocol.money import Money
from farebox.protocol.records import (
    ClockState,
    EncodedRecord,
    Location,
    MediaKind,
    Outcome,
    Reason,
    Record,
    Tap,
    TapType,
)
from farebox.server.collector import tune_collector
from farebox.server.ledger import writes
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.store import Session, Store, open_store
from farebox.server.sync import devices
from farebox.server.sync.fares import Books, fare_posting
from farebox.server.sync.ingest import RECORD_COLUMNS, record_rows
from tests.support.postgres import server_bin_dir, throwaway_cluster

BATCH = SyncConfig().max_batch_records
"""Records in a full batch: as a validator uploads a backlog (`sync.max_batch_records`)."""
PROCESSES = (1, 2)
"""Server processes sharing the port: one, and one per core of the 2-core machine."""
START_MS = 1_795_669_200_000
POLICY = FareDayPolicy.parse("Asia/Almaty", "03:00")
CBOR = {"Content-Type": "application/cbor"}
# Riders with room on their accounts: every tap posts, none crosses into the stoplist
# (a stoplist change per tap is a different workload, measured by bench.ledger).
CREDIT = 10**12
BOOKS = Books(POLICY, CREDIT)


@dataclass
class SimDevice:
    id: str
    key: SigningKey
    bodies: list[bytes]
    batches: list[list[EncodedRecord]]


def day_of_records(device: str, count: int, riders: int) -> list[EncodedRecord]:
    """A device's day: `count` accepted taps of consecutive riders from a start that the
    device's id fixes (the same in every run), out of `riders`."""
    cursor, entries = Cursor.start(device), []
    location = Location(route="12", vehicle=device, stop="abay-ave")
    first = zlib.crc32(device.encode())
    for n in range(count):
        token = f"nfc:{(first + n) % riders:08x}"
        tap = Tap(MediaKind.NFC, token, TapType.SINGLE, Outcome.ACCEPT, Reason.OK,
                  Money(20000, "KZT"), "single", "adult", 1, 1)  # fmt: skip
        record = Record(device, cursor.seq + 1, cursor.head, START_MS + n * 20_000,
                        ClockState.SYNCED, location, tap)  # fmt: skip
        entries.append(EncodedRecord.of(record))
        cursor = cursor.after(entries[-1])
    return entries


def fleet(prefix: str, size: int, records: int) -> list[SimDevice]:
    out = []
    for n in range(size):
        device_id, key = f"{prefix}-{n:04d}", SigningKey.generate()
        journal = day_of_records(device_id, records, riders=50_000)
        batches = [journal[i : i + BATCH] for i in range(0, len(journal), BATCH)]
        bodies = []
        for part in batches:
            last = part[-1]
            checkpoint = Checkpoint(device_id, last.record.seq, last.digest, START_MS)
            signed = sign_checkpoint(checkpoint, key)
            bodies.append(encode_message(Batch(device_id, tuple(part), signed)))
        out.append(SimDevice(device_id, key, bodies, batches))
    return out


@contextlib.contextmanager
def server(db: str, processes: int) -> Iterator[int]:
    """`processes` server processes sharing one port (`--reuse-port`) over `db`."""
    env = {**os.environ, "FAREBOX_DB": db, "FAREBOX_CREDIT_LIMIT": str(CREDIT)}
    subprocess.run([sys.executable, "-m", "farebox.server.cli", "init"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "farebox.server.cli", "run", "--listen",
               f"127.0.0.1:{port}", "--reuse-port"]  # fmt: skip
    with contextlib.ExitStack() as running:
        for _ in range(processes):
            process = running.enter_context(
                subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)  # noqa: S603
            )
            running.callback(process.wait, 30)
            running.callback(process.terminate)
            assert process.stdout is not None
            assert "listening" in process.stdout.readline()
        yield port


async def enroll_all(db: str, port: int, sims: Sequence[SimDevice]) -> None:
    store = await open_store(db)
    try:
        tokens = [await _token(store, sim) for sim in sims]
    finally:
        await store.close()
    async with aiohttp.ClientSession() as http:
        for sim, token in zip(sims, tokens, strict=True):
            body = encode_enroll_request(EnrollRequest(token, sim.key.verify_key))
            async with http.post(f"http://127.0.0.1:{port}/v1/enroll", data=body,
                                 headers=CBOR) as response:  # fmt: skip
                assert response.status == 200, await response.text()


async def upload(port: int, sims: Sequence[SimDevice]) -> float:
    """Send every device's batches, all devices at once, each as an agent does: in order,
    one batch in flight, on a connection of its own (so that server processes sharing the
    port each get their share of the devices); return records per second."""
    url = f"http://127.0.0.1:{port}/v1/batches"

    async def device(sim: SimDevice) -> None:
        async with aiohttp.ClientSession() as http:
            for body in sim.bodies:
                now = int(time.time() * 1000)
                proof = sign_request(sim.key, sim.id, "POST", "/v1/batches", body,
                                     time_ms=now, nonce=secrets.token_bytes(16))  # fmt: skip
                headers = {**CBOR, **proof.headers()}
                async with http.post(url, data=body, headers=headers) as r:
                    assert r.status == 200, await r.text()

    total = sum(len(b) for sim in sims for b in sim.batches)
    started = time.perf_counter()
    await asyncio.gather(*(device(sim) for sim in sims))
    return total / (time.perf_counter() - started)


async def bare_write(db: str, sims: Sequence[SimDevice]) -> float:
    """The same rows written straight to a fresh store: records and fare postings, every
    device's batches at once as in the uploads (each device's in order)."""
    store = await open_store(db)
    try:
        await store.migrate()
        for sim in sims:
            token = await _token(store, sim)
            await store.run(devices.enroll, token, sim.key.verify_key, START_MS)
        # The rows are made before the clock starts: the ceiling is the write alone.
        writes_of = {sim.id: [_rows(sim.id, part) for part in sim.batches] for sim in sims}

        async def device(sim: SimDevice) -> None:
            for records, posting in writes_of[sim.id]:
                await store.run(_write, records, posting)

        total = sum(len(b) for sim in sims for b in sim.batches)
        started = time.perf_counter()
        await asyncio.gather(*(device(sim) for sim in sims))
        return total / (time.perf_counter() - started)
    finally:
        await store.close()


async def _token(store: Store, sim: SimDevice) -> str:
    return await store.run(devices.create_token, sim.id, DeviceKind.BUS, START_MS, 10**12)


def _rows(
    device: str, part: Sequence[EncodedRecord]
) -> tuple[list[tuple[object, ...]], writes.Posting]:
    """A batch's record rows and its fare postings."""
    posting, _ = fare_posting(part, BOOKS, (), START_MS)
    return record_rows(device, part, START_MS), posting


async def _write(
    session: Session, records: Sequence[tuple[object, ...]], posting: writes.Posting
) -> None:
    await session.insert_rows("records", RECORD_COLUMNS, records)
    await writes.post_transfers(session, posting)


async def measure(
    db_for: Iterator[str],
    sims: Sequence[SimDevice],
    storm: Sequence[SimDevice],
    label: str,
    target: str,
) -> list[Row]:
    """The bare write, then ingest and storm over HTTP for one and for two server
    processes, each on a fresh store."""
    rows = []
    ceiling = await bare_write(next(db_for), sims)
    records = sum(len(b) for sim in storm for b in sim.batches)
    for processes in PROCESSES:
        db = next(db_for)
        with server(db, processes) as port:
            await enroll_all(db, port, [*sims, *storm])
            rate = await upload(port, sims)
            started = time.perf_counter()
            await upload(port, storm)
            storm_s = time.perf_counter() - started
        how = f"{label}, {processes} server process{'es' if processes > 1 else ''}"
        rows.append(Row(f"ingest over HTTP, {how}", rate, "tx/s", ceiling, target))
        what = f"reconnect storm, {len(storm)} devices x {records // len(storm)}, {how}"
        rows.append(
            Row(what, storm_s, "s", records / ceiling, "<= 30 s (ceiling: bare write time)")
        )
    return rows


def sqlite_urls(folder: Path) -> Iterator[str]:
    for n in range(10):
        yield f"sqlite:///{folder / f'ingest-{n}.db'}"


async def postgres_urls(dsn: str) -> Iterator[str]:
    import asyncpg

    admin = await asyncpg.connect(dsn)
    names = []
    try:
        for n in range(1 + len(PROCESSES)):
            name = f"bench_{n}"
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
            names.append(dsn.rsplit("/", 1)[0] + f"/{name}")
    finally:
        await admin.close()
    return iter(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller fleet and storm")
    args = parser.parse_args()
    devices_n, per_device, storm_n, storm_records = (
        (20, 1000, 60, 500) if args.quick else (40, 2500, 300, 1500)
    )
    sims = fleet("bus", devices_n, per_device)
    storm = fleet("storm", storm_n, storm_records)
    tune_collector()  # as the servers do: for the bare write here, and the load generator
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows += asyncio.run(measure(sqlite_urls(Path(folder)), sims, storm, "SQLite",
                                    ">= 25,000 tx/s"))  # fmt: skip
    bin_dir = server_bin_dir()
    if bin_dir is not None:
        with throwaway_cluster(bin_dir) as cluster:
            urls = asyncio.run(postgres_urls(cluster.dsn()))
            rows += asyncio.run(measure(urls, sims, storm, "PostgreSQL", ">= 20,000 tx/s"))
    print(render("Sync server ingest (load generator on the same machine)", rows))


if __name__ == "__main__":
    main()
