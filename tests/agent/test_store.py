"""The store on a real SQLite file: chain, acknowledgement, pruning, packages."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farebox.agent.errors import CacheError, FullPackageNeededError, StoreError, WrongDeviceError
from farebox.agent.store.history import TicketUse
from farebox.agent.store.state import Store
from farebox.protocol import cbor
from farebox.protocol.chain import Cursor
from farebox.protocol.keys import SigningKey
from farebox.protocol.packages import Package, PackageKind, sign_package
from farebox.protocol.records import ClockState, Event, EventKind, Outcome
from farebox.protocol.stoplist import StoplistChange, StoplistChecksum, encode_stoplist_change
from farebox.protocol.tariffs.wire import encode_tariff
from tests.agent.builders import city_tariff
from tests.support.records import MORNING_MS, ROUTE_12, accepted_tap, denied_tap

DEVICE = "bus-017"
SERVER_KEY = SigningKey.from_seed(b"\x5e" * 32)
OTHER_KEY = SigningKey.from_seed(b"\x5f" * 32)


def open_store(path: Path, device: str = DEVICE) -> Store:
    return Store.open(path / "agent.db", device, lock_timeout_ms=200)


def stoplist_package(
    version: int,
    base: int | None,
    added: set[str],
    removed: set[str],
    held: set[str],
    key: SigningKey = SERVER_KEY,
) -> Package:
    change = StoplistChange(base is None, frozenset(added), frozenset(removed))
    after = (held | added) - removed
    return sign_package(
        PackageKind.STOPLIST,
        version,
        base,
        StoplistChecksum.of(after).digest(),
        encode_stoplist_change(change),
        key,
    )


def test_records_chain_across_reopen(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    first = store.record(MORNING_MS, ClockState.SYNCED, ROUTE_12, Event.of(EventKind.BOOT))
    second = store.record(
        MORNING_MS + 1, ClockState.SYNCED, ROUTE_12, accepted_tap(), remember=True
    )
    store.close()
    store = open_store(tmp_path)
    assert store.cursor == Cursor(2, second.digest)
    assert second.record.prev == first.digest
    third = store.record(MORNING_MS + 2, ClockState.SYNCED, ROUTE_12, denied_tap())
    assert third.record.seq == 3
    assert store.verify() == store.cursor
    store.close()


def test_history_keeps_remembered_taps_only(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    tap = accepted_tap("nfc:aa")
    store.record(MORNING_MS, ClockState.SYNCED, ROUTE_12, tap, remember=True)
    store.record(MORNING_MS + 5, ClockState.SYNCED, ROUTE_12, tap)
    recent = store.recent("nfc:aa", MORNING_MS - 1)
    assert [(p.seq, p.outcome, p.fare) for p in recent] == [(1, Outcome.ACCEPT, tap.fare)]
    assert store.recent("nfc:aa", MORNING_MS + 1) == ()
    store.record(
        MORNING_MS, ClockState.SYNCED, ROUTE_12, tap, ticket=TicketUse(b"t1", MORNING_MS + 10)
    )
    assert store.ticket_uses(b"t1") == 1
    store.prune(MORNING_MS + 11, retention_ms=0, history_ms=1)
    assert store.ticket_uses(b"t1") == 0
    assert store.recent("nfc:aa", 0) == ()
    store.close()


def test_wrong_device_is_refused(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    with pytest.raises(WrongDeviceError):
        open_store(tmp_path, "bus-018")


def test_unacked_records_are_never_pruned(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    entries = [
        store.record(MORNING_MS + i, ClockState.SYNCED, ROUTE_12, accepted_tap()) for i in range(5)
    ]
    assert store.prune(MORNING_MS * 2, retention_ms=0, history_ms=0) == 0
    store.acknowledge(Cursor(3, entries[2].digest), MORNING_MS + 100)
    assert [e.record.seq for e in store.pending(10)] == [4, 5]
    assert store.prune(MORNING_MS + 100, retention_ms=0, history_ms=0) == 0  # not yet past
    assert store.prune(MORNING_MS + 101, retention_ms=0, history_ms=0) == 3
    figures = store.figures()
    assert (figures.head_seq, figures.acked_seq, figures.unacked, figures.kept) == (5, 3, 2, 2)
    assert figures.last_sync_ms == MORNING_MS + 100
    store.close()
    store = open_store(tmp_path)
    assert store.verify() == store.cursor
    assert store.acked.seq == 3
    store.close()


def test_newest_record_survives_pruning(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    entry = store.record(MORNING_MS, ClockState.SYNCED, ROUTE_12, accepted_tap())
    store.acknowledge(Cursor(1, entry.digest), MORNING_MS)
    assert store.prune(MORNING_MS + 10, retention_ms=0, history_ms=0) == 0
    store.close()
    store = open_store(tmp_path)
    assert (
        store.record(MORNING_MS, ClockState.SYNCED, ROUTE_12, denied_tap()).record.prev
        == entry.digest
    )
    store.close()


def test_ack_of_a_foreign_hash_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.record(MORNING_MS, ClockState.SYNCED, ROUTE_12, accepted_tap())
    with pytest.raises(StoreError):
        store.acknowledge(Cursor(1, b"\x00" * 32), MORNING_MS)
    store.close()


def test_stoplist_full_then_delta(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    held = {"nfc:01", "nfc:02", "nfc:03"}
    store.apply_package(stoplist_package(1, None, held, set(), set()), [SERVER_KEY.verify_key], 7)
    store.apply_package(
        stoplist_package(2, 1, {"nfc:04"}, {"nfc:01"}, held), [SERVER_KEY.verify_key], 8
    )
    store.close()
    store = open_store(tmp_path)
    stoplist = store.caches.stoplist
    assert (stoplist.version, len(stoplist), stoplist.confirmed_ms) == (2, 3, 8)
    assert "nfc:04" in stoplist
    assert "nfc:01" not in stoplist
    assert stoplist.checksum == StoplistChecksum.of({"nfc:02", "nfc:03", "nfc:04"})
    store.close()


def test_stoplist_mismatch_keeps_the_old_list_and_asks_for_a_full_one(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    held = {"nfc:01", "nfc:02"}
    trusted = [SERVER_KEY.verify_key]
    store.apply_package(stoplist_package(1, None, held, set(), set()), trusted, 7)
    wrong = stoplist_package(2, 1, {"nfc:09"}, set(), {"nfc:77"})  # server thinks otherwise
    with pytest.raises(FullPackageNeededError):
        store.apply_package(wrong, trusted, 8)
    gap = stoplist_package(3, 2, {"nfc:09"}, set(), held)  # based on a version we lack
    with pytest.raises(FullPackageNeededError):
        store.apply_package(gap, trusted, 8)
    store.close()
    store = open_store(tmp_path)
    assert store.caches.stoplist.version == 1
    assert "nfc:09" not in store.caches.stoplist
    store.close()


def test_untrusted_or_old_packages_are_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    trusted = [SERVER_KEY.verify_key]
    with pytest.raises(CacheError):
        store.apply_package(stoplist_package(1, None, {"x"}, set(), set(), OTHER_KEY), trusted, 1)
    store.apply_package(stoplist_package(2, None, {"x"}, set(), set()), trusted, 1)
    with pytest.raises(CacheError):
        store.apply_package(stoplist_package(2, None, {"y"}, set(), set()), trusted, 1)
    store.close()


def test_config_package_is_a_whole_state(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    payload = cbor.encode({"in_service": False})
    package = sign_package(
        PackageKind.CONFIG, 4, None, hashlib.sha256(payload).digest(), payload, SERVER_KEY
    )
    store.apply_package(package, [SERVER_KEY.verify_key], 3)
    store.close()
    store = open_store(tmp_path)
    assert store.caches.config is not None
    assert store.caches.config.value == {"in_service": False}
    assert store.caches.versions()["config"] == 4
    store.close()


def test_a_failed_commit_is_reported_and_leaves_no_gap(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.record(MORNING_MS, ClockState.SYNCED, ROUTE_12, accepted_tap())
    blocker = sqlite3.connect(tmp_path / "agent.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the bound
    with pytest.raises(StoreError):
        store.record(MORNING_MS, ClockState.SYNCED, ROUTE_12, accepted_tap())
    blocker.execute("ROLLBACK")
    blocker.close()
    assert store.record(MORNING_MS, ClockState.SYNCED, ROUTE_12, accepted_tap()).record.seq == 2
    assert store.verify().seq == 2
    store.close()


def test_tariff_package_travels_in_its_wire_form(tmp_path: Path) -> None:
    tariff = city_tariff()
    payload = encode_tariff(tariff)
    package = sign_package(
        PackageKind.TARIFF, 3, None, hashlib.sha256(payload).digest(), payload, SERVER_KEY
    )
    store = open_store(tmp_path)
    store.apply_package(package, [SERVER_KEY.verify_key], 5)
    store.close()
    store = open_store(tmp_path)
    assert store.caches.tariff is not None
    assert store.caches.tariff.version == 3
    assert encode_tariff(store.caches.tariff.value) == payload
    store.close()


def test_a_new_tariff_keeps_the_one_it_replaces(tmp_path: Path) -> None:
    current = city_tariff()
    future = dataclasses.replace(
        current, version=2, effective_from=datetime(2026, 12, 1, tzinfo=UTC)
    )
    store = open_store(tmp_path)
    for version, tariff in ((3, current), (4, future)):
        payload = encode_tariff(tariff)
        package = sign_package(
            PackageKind.TARIFF, version, None, hashlib.sha256(payload).digest(), payload, SERVER_KEY
        )
        store.apply_package(package, [SERVER_KEY.verify_key], version)
    store.close()
    store = open_store(tmp_path)
    held = store.caches
    assert held.tariff is not None
    assert (held.tariff.version, [c.version for c in held.earlier_tariffs]) == (4, [3])
    in_force = held.tariff_at(MORNING_MS)
    assert in_force is not None
    assert in_force.version == 3
    store.close()
