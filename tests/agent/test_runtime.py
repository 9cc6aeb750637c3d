"""The runtime in-process on a real SQLite file: order, commit before feedback, shutdown,
route changes, out of service on a full journal and recovery, systemd notifications."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import pytest

from farebox.agent import runtime as runtime_module
from farebox.agent.runtime import LocationChange, Service
from farebox.agent.status import read_runtime
from farebox.agent.store.state import Store
from farebox.agent.systemd import Notifier
from farebox.protocol.records import ClockState, EventKind, Location, Reason
from tests.agent.builders import MORNING_MS, card, install_packages, qr_ticket, scan
from tests.agent.harness import agent_config, start_agent, until


def cards(count: int, start: int = 0) -> list[bytes]:
    return [(start + i).to_bytes(7, "big") for i in range(count)]


def journal_bodies(path: Path) -> list[object]:
    store = Store.open(path, "bus-017", lock_timeout_ms=1000)
    try:
        store.verify()
        return [entry.record.body for entry in store.pending(10_000)]
    finally:
        store.close()


async def test_taps_are_handled_in_order_and_committed_before_feedback(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    agent = await start_agent(config)
    uids = cards(30)
    agent.reader.feed(card(uid) for uid in uids)
    await until(lambda: agent.runtime.taps_handled == 30)
    await agent.shutdown()
    taps = agent.feedback.taps
    assert [t.token for t in taps] == [f"nfc:{uid.hex()}" for uid in uids]
    assert [t.seq for t in taps] == list(range(2, 32))  # seq 1 is the boot record
    assert all(committed for _, committed in agent.feedback.shown if _.seq is not None)
    assert all(t.reason is Reason.NO_TARIFF for t in taps)  # no tariff package yet
    assert agent.feedback.closed
    assert agent.reader.stopped
    bodies = journal_bodies(config.state.database)
    assert len(bodies) == 31
    assert read_runtime(tmp_path) is not None


async def test_shutdown_finishes_the_tap_in_progress(tmp_path: Path) -> None:
    config = agent_config(tmp_path, state={"lock_timeout_ms": 5000})
    agent = await start_agent(config)
    blocker = sqlite3.connect(config.state.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the tap's commit waits for this lock
    agent.reader.feed([card(b"\x01\x02\x03\x04")])
    await until(lambda: agent.runtime.busy)
    agent.stop.set()
    await asyncio.sleep(0.2)
    assert not agent.task.done()  # still finishing the tap
    blocker.execute("ROLLBACK")
    blocker.close()
    await asyncio.wait_for(agent.task, 10)
    assert [t.seq for t in agent.feedback.taps] == [2]
    assert agent.runtime.service is Service.STOPPED


async def test_a_route_change_is_journalled_and_stamps_later_taps(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    agent = await start_agent(config)
    new = Location(route="32", vehicle="bus-017", stop="abay-ave")
    agent.runtime.submit(LocationChange(new, "outbound"))
    agent.reader.feed([card(b"\x0a\x0b\x0c\x0d")])
    await until(lambda: agent.runtime.taps_handled == 1)
    await agent.shutdown()
    store = Store.open(config.state.database, "bus-017", lock_timeout_ms=1000)
    entries = store.pending(10)
    store.close()
    boot, change, tap = (entry.record for entry in entries)
    assert boot.body.kind is EventKind.BOOT  # type: ignore[union-attr]
    assert change.body.kind is EventKind.ROUTE_CHANGE  # type: ignore[union-attr]
    assert dict(change.body.detail)["direction"] == "outbound"  # type: ignore[union-attr]
    assert tap.location == new


async def test_a_full_journal_takes_the_validator_out_of_service_until_it_can_write(
    tmp_path: Path,
) -> None:
    # The disk is "full" through a size-limited database (state.max_size_mb, which sets
    # PRAGMA max_page_count): a real SQLITE_FULL on every write, without root or tmpfs.
    config = agent_config(tmp_path, state={"max_size_mb": 0.25, "retention_days": 0})
    agent = await start_agent(config)
    runtime = agent.runtime
    batch = 0
    while runtime.service is Service.IN_SERVICE:
        assert batch < 100, "the journal never filled"
        agent.reader.feed(card(uid) for uid in cards(50, batch * 50))
        batch += 1
        target = 50 * batch
        await until(
            lambda: runtime.taps_handled >= target or runtime.service is not Service.IN_SERVICE  # noqa: B023 (awaited at once)
        )
    assert runtime.service is Service.OUT_OF_SERVICE
    status = read_runtime(tmp_path)
    assert status is not None
    assert status["service"] == "out_of_service"
    before = runtime.taps_handled
    agent.reader.feed([card(b"\xee\xee\xee\xee")])
    await until(lambda: agent.feedback.shown[-1][0].reason is Reason.OUT_OF_SERVICE)
    assert runtime.taps_handled == before  # nothing recorded, nothing accepted
    # The server acknowledges everything; housekeeping prunes; the pages are free again.
    store = runtime.store
    await runtime.on_store(store.acknowledge, store.cursor, runtime.clock() - 10)
    await runtime.on_store(lambda: store.prune(runtime.clock(), retention_ms=0, history_ms=1))
    await until(lambda: runtime.service is Service.IN_SERVICE)
    agent.reader.feed([card(b"\xdd\xdd\xdd\xdd")])
    await until(lambda: runtime.taps_handled == before + 1)
    await agent.shutdown()
    assert all(committed for indication, committed in agent.feedback.shown if indication.seq)
    assert journal_bodies(config.state.database)  # the chain still verifies


async def test_ready_and_watchdog_are_sent_and_withheld_while_the_tap_loop_is_stuck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.setblocking(False)  # noqa: FBT003 (socket API)
    monkeypatch.setattr(runtime_module, "STUCK_S", 0.2)
    notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "150000"})
    config = agent_config(tmp_path, state={"lock_timeout_ms": 3000})
    agent = await start_agent(config, notifier)

    def drain() -> list[bytes]:
        messages = []
        for _ in range(1000):
            try:
                messages.append(listener.recv(4096))
            except BlockingIOError:
                break
        return messages

    await asyncio.sleep(0.3)
    first = drain()
    assert any(b"READY=1" in m for m in first)
    assert any(m == b"WATCHDOG=1" for m in first)
    blocker = sqlite3.connect(config.state.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    agent.reader.feed([card(b"\x05\x06\x07\x08")])
    await asyncio.sleep(0.5)  # past STUCK_S with the tap still waiting on the lock
    drain()
    await asyncio.sleep(0.3)
    assert b"WATCHDOG=1" not in drain()
    blocker.execute("ROLLBACK")
    blocker.close()
    await until(lambda: agent.runtime.taps_handled == 1)
    await asyncio.sleep(0.3)
    assert b"WATCHDOG=1" in drain()
    await agent.shutdown()
    assert any(b"STOPPING=1" in m for m in drain())
    listener.close()


async def test_a_single_ride_ticket_validates_once(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    install_packages(config.state.database, "bus-017")
    agent = await start_agent(config)
    text = qr_ticket(valid_until_ms=MORNING_MS + 3 * 3_600_000)
    agent.reader.feed(
        [scan(text), scan(text, MORNING_MS + 20_000), scan(text, MORNING_MS + 120_000)]
    )
    await until(lambda: agent.runtime.taps_handled == 3)
    await agent.shutdown()
    first, again, later = agent.feedback.taps
    assert (first.accepted, first.display) == (True, "OK 200.00 KZT")
    assert (again.accepted, again.display) == (True, "OK")  # a re-tap: shown OK, not charged
    assert (later.accepted, later.reason) == (False, Reason.ALREADY_USED)
    store = Store.open(config.state.database, "bus-017", lock_timeout_ms=1000)
    assert store.ticket_uses(b"T-0001") == 1
    store.close()


async def test_a_clock_the_last_sync_found_drifting_follows_the_clock_policy(
    tmp_path: Path,
) -> None:
    config = agent_config(tmp_path, policy={"max_drift_s": 60})
    install_packages(config.state.database, "bus-017")
    store = Store.open(config.state.database, "bus-017", lock_timeout_ms=1000)
    store.set_clock_offset_ms(10 * 60_000)  # the server was ten minutes ahead
    store.close()
    agent = await start_agent(config)
    agent.reader.feed([card(b"\x01\x01\x01\x01")])
    await until(lambda: agent.runtime.taps_handled == 1)
    await agent.shutdown()
    (tap,) = agent.feedback.taps
    assert tap.reason is Reason.CLOCK_UNSET
    store = Store.open(config.state.database, "bus-017", lock_timeout_ms=1000)
    record = store.pending(10)[-1].record
    store.close()
    assert record.clock is ClockState.DRIFTING
