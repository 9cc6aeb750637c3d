"""The validator agent: tap latency, memory, start-up and stoplist packages, with ceilings.

- 1M snapshot: applying a signed full stoplist package of 1M tokens (verify, strict CBOR
  decode, key array, checksum, one transaction); ceiling: SHA-256 of the same tokens once.
- 10k delta: a signed delta (5k added, 5k removed) on that list; ceiling: writing the
  same 8 MB key array in one transaction with synchronous=FULL.
- Tap to durable decision (p50, p99): from a presentation handed to the runtime to its
  feedback, with the 1M list and the city tariff in force (identify, history, decide,
  commit with synchronous=FULL); ceiling: a bare SQLite insert + commit of the same record
  bytes with synchronous=FULL, in the same directory.
- Start to ready and resident memory: a real `farebox-agent run` process on that state
  (1M stoplist) until READY=1 on $NOTIFY_SOCKET, then its VmRSS after 200 taps; ceilings:
  a bare interpreter that imports sqlite3 (start and memory).

    .venv/bin/python -m bench.agent
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.table import Row, render
from farebox.agent.config import parse_config
from farebox.agent.feedback import Indication
from farebox.agent.presentation import CardTechnology, Media, Presentation
from farebox.agent.readers.base import read_time
from farebox.agent.runtime import Runtime
from farebox.agent.store.state import Store
from farebox.protocol.keys import SigningKey
from farebox.protocol.packages import Package, PackageKind, sign_package
from farebox.protocol.stoplist import StoplistChange, StoplistChecksum, encode_stoplist_change
from farebox.protocol.tariffs.native import load_tariff
from farebox.protocol.tariffs.wire import encode_tariff

DEVICE = "bench-1"
TOKENS = 1_000_000
DELTA = 5_000
TAPS = 2_000
PROCESS_TAPS = 200
KEY = SigningKey.from_seed(b"\x42" * 32)
BARE_PROGRAM = (
    "import sqlite3, sys; sys.stdout.write('up\\n'); sys.stdout.flush(); sys.stdin.read()"
)
TARIFF = Path(__file__).resolve().parents[1] / "packaging" / "tariffs" / "city-kzt.toml"


def ms(seconds: float) -> float:
    return seconds * 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def stoplist_packages() -> tuple[list[str], Package, Package]:
    tokens = [f"nfc:{i:014x}" for i in range(TOKENS)]
    full = StoplistChange(full=True, added=frozenset(tokens), removed=frozenset())
    snapshot = sign_package(
        PackageKind.STOPLIST,
        1,
        None,
        StoplistChecksum.of(tokens).digest(),
        encode_stoplist_change(full),
        KEY,
    )
    added = frozenset(f"nfc:ff{i:012x}" for i in range(DELTA))
    removed = frozenset(tokens[:: TOKENS // DELTA][:DELTA])
    after = StoplistChecksum.of(tokens).add(added).remove(removed)
    change = StoplistChange(full=False, added=added, removed=removed)
    delta = sign_package(
        PackageKind.STOPLIST, 2, 1, after.digest(), encode_stoplist_change(change), KEY
    )
    return tokens, snapshot, delta


def tariff_package() -> Package:
    payload = encode_tariff(load_tariff(TARIFF.read_text()))
    digest = hashlib.sha256(payload).digest()
    return sign_package(PackageKind.TARIFF, 1, None, digest, payload, KEY)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bare_hash(tokens: list[str]) -> float:
    start = time.perf_counter()
    for token in tokens:
        hashlib.sha256(token.encode()).digest()
    return time.perf_counter() - start


def bare_blob_write(directory: Path, blob: bytes) -> float:
    conn = sqlite3.connect(directory / "ceiling-blob.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)")
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT OR REPLACE INTO t VALUES ('stoplist', ?)", (blob,))
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def bare_commits(directory: Path, raw: bytes, count: int) -> list[float]:
    conn = sqlite3.connect(directory / "ceiling-taps.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, raw BLOB, digest BLOB, t INT)")
    times = []
    for seq in range(1, count + 1):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO journal VALUES (?, ?, ?, ?)",
            (seq, raw, hashlib.sha256(raw).digest(), seq),
        )
        conn.execute("COMMIT")
        times.append(time.perf_counter() - start)
    conn.close()
    return times


@dataclass
class Timer:
    """Feedback that wakes the bench when a tap's indication is shown."""

    shown: asyncio.Event

    def show(self, indication: Indication) -> None:
        if indication.seq is not None:
            self.shown.set()

    def close(self) -> None:
        return None


async def tap_latencies(directory: Path, store: Store) -> tuple[list[float], bytes]:
    config = parse_config(
        {
            "device": {"id": DEVICE},
            "location": {"route": "12", "stop": "abay-ave"},
            "state": {"directory": str(directory)},
        },
        {},
    )
    timer = Timer(asyncio.Event())
    runtime = Runtime(config, store, [], timer)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    await runtime.wait_ready()
    latencies = []
    for n in range(TAPS):
        uid = (0x1000_0000 + n).to_bytes(7, "big")
        timer.shown.clear()
        presentation = Presentation(
            "bench", Media.NFC, read_time(), uid=uid, technology=CardTechnology.TYPE2
        )
        start = time.perf_counter()
        runtime.submit(presentation)
        await asyncio.wait_for(timer.shown.wait(), 5)
        latencies.append(time.perf_counter() - start)
    raw = (await runtime.on_store(store.pending, 1))[0].raw
    stop.set()
    await asyncio.wait_for(task, 10)
    return latencies, raw


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def agent_process(directory: Path) -> tuple[float, float]:
    """Start a real agent on `directory`; return seconds to READY and MiB resident after taps."""
    config = directory / "agent.toml"
    config.write_text(
        f'[device]\nid = "{DEVICE}"\n[location]\nroute = "12"\nstop = "abay-ave"\n'
        f'[state]\ndirectory = "{directory}"\n[feedback]\nkind = "none"\n[log]\nlevel = "ERROR"\n'
        '[[readers]]\nkind = "scripted"\ntarget = "-"\n'
    )
    address = str(directory / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": address}
    start = time.perf_counter()
    agent = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "farebox.agent.cli", "run", "--config", str(config)],
        stdin=subprocess.PIPE,
        env=env,
        text=True,
    )
    for _ in range(100):  # READY comes after a STATUS or two; the socket times out at 30 s
        if b"READY=1" in listener.recv(4096):
            break
    ready = time.perf_counter() - start
    assert agent.stdin is not None
    for n in range(PROCESS_TAPS):
        agent.stdin.write(f"nfc {0x2000_0000 + n:014x}\n")
    agent.stdin.flush()
    time.sleep(1.0)
    rss = rss_kib(agent.pid) / 1024
    agent.terminate()
    agent.wait(10)
    listener.close()
    return ready, rss


def bare_interpreter() -> tuple[float, float]:
    start = time.perf_counter()
    probe = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-c", BARE_PROGRAM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert probe.stdout is not None
    probe.stdout.readline()
    started = time.perf_counter() - start
    rss = rss_kib(probe.pid) / 1024
    probe.communicate("")
    return started, rss


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="farebox-bench-agent-") as name:
        directory = Path(name)
        tokens, snapshot, delta = stoplist_packages()
        hash_all = bare_hash(tokens)
        del tokens  # the agent keeps 8-byte keys; the bench should not hold the strings
        store = Store.open(directory / "agent.db", DEVICE, lock_timeout_ms=2000)
        trusted = [KEY.verify_key]
        store.apply_package(tariff_package(), trusted, 0)
        load = timed(lambda: store.apply_package(snapshot, trusted, int(time.time() * 1000)))
        apply = timed(lambda: store.apply_package(delta, trusted, int(time.time() * 1000)))
        blob = bare_blob_write(directory, store.caches.stoplist.to_bytes())
        latencies, raw = asyncio.run(tap_latencies(directory, store))
        bare = bare_commits(directory, raw, TAPS)
        ready, rss = agent_process(directory)
        bare_start, bare_rss = bare_interpreter()
    rows = [
        Row("1M stoplist snapshot applied", load, "s", hash_all, "<= 10 s"),
        Row("10k stoplist delta applied", ms(apply), "ms", ms(blob), "<= 500 ms"),
        Row(
            "tap to durable decision p50",
            ms(statistics.median(latencies)),
            "ms",
            ms(statistics.median(bare)),
            "<= 3 ms",
        ),
        Row(
            "tap to durable decision p99",
            ms(percentile(latencies, 0.99)),
            "ms",
            ms(percentile(bare, 0.99)),
            "<= 15 ms",
        ),
        Row("start to ready (1M stoplist)", ms(ready), "ms", ms(bare_start), "<= 1500 ms"),
        Row("resident memory after taps", rss, "MiB", bare_rss, "<= 80 MiB"),
    ]
    sys.stdout.write(
        render("Agent (ceilings: bare hash, bare blob write, bare commit, bare interpreter)", rows)
        + "\n"
    )


if __name__ == "__main__":
    main()
