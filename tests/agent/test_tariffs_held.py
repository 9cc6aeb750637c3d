"""Tariffs sent ahead of their day, on a real SQLite file: every tariff that may still
come into force is kept, whatever order packages arrive in, and the one in force at a
moment is the protocol's `in_force` over them all."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farebox.agent.decision import LocalHistory, Now, decide
from farebox.agent.policy import Policy
from farebox.agent.store.caches import Caches
from farebox.agent.store.state import Store
from farebox.protocol.packages import PackageKind, sign_package
from farebox.protocol.records import ClockState, Location
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.wire import encode_tariff
from tests.agent.builders import MORNING_MS, PACKAGE_KEY, card, city_tariff
from tests.agent.older_schema import database_before, insert_cache

BUS = Location(route="12", vehicle="bus-017", stop="abay-ave")
CURRENT = city_tariff()  # in force since 2026-01-01; MORNING_MS is 2026-11-26


def starting(day: int, version: int) -> Tariff:
    return replace(CURRENT, version=version, effective_from=datetime(2026, 12, day, tzinfo=UTC))


def ms(day: int, month: int = 12) -> int:
    return int(datetime(2026, month, day, 8, tzinfo=UTC).timestamp() * 1000)


def publish(store: Store, version: int, tariff: Tariff, now_ms: int = MORNING_MS) -> Caches:
    payload = encode_tariff(tariff)
    digest = hashlib.sha256(payload).digest()
    package = sign_package(PackageKind.TARIFF, version, None, digest, payload, PACKAGE_KEY)
    return store.apply_package(package, [PACKAGE_KEY.verify_key], now_ms)


def pricing(caches: Caches, at_ms: int) -> int | None:
    held = caches.tariff_at(at_ms)
    return None if held is None else held.version


def open_store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "agent.db", "bus-017", lock_timeout_ms=200)


def test_a_corrected_tariff_for_the_same_day_keeps_the_one_in_force(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    publish(store, 3, CURRENT)
    publish(store, 4, starting(1, version=2))
    publish(store, 5, starting(1, version=3))  # the same day, corrected
    store.close()
    store = open_store(tmp_path)
    held = store.caches
    assert [c.version for c in held.tariffs] == [3, 5]  # 4 can never be in force: dropped
    assert (pricing(held, MORNING_MS), pricing(held, ms(2))) == (3, 5)
    tap = decide(card(), held, LocalHistory(), Now(MORNING_MS, ClockState.SYNCED), BUS, Policy())
    assert (tap.accepted, tap.tap.tariff_version) == (True, 3)
    store.close()


def test_a_tariff_sent_again_with_the_same_start_and_version_replaces_it(
    tmp_path: Path,
) -> None:
    # A GTFS feed is always version 0: a corrected feed for the same start must still win.
    store = open_store(tmp_path)
    publish(store, 3, CURRENT)
    publish(store, 4, replace(CURRENT, id="city-corrected"))
    held = store.caches
    chosen = held.tariff_at(MORNING_MS)
    assert chosen is not None
    assert (chosen.version, chosen.value.id) == (4, "city-corrected")
    store.close()


def test_each_tariff_waiting_for_its_day_prices_its_own_days(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    publish(store, 3, CURRENT)
    publish(store, 4, starting(1, version=2))
    held = publish(store, 5, starting(15, version=3))
    assert [pricing(held, at) for at in (MORNING_MS, ms(5), ms(20))] == [3, 4, 5]
    # Once the 1 December tariff is in force, the one it follows can never be again.
    held = publish(store, 6, starting(20, version=4), now_ms=ms(2))
    assert [c.version for c in held.tariffs] == [4, 5, 6]
    store.close()
    store = open_store(tmp_path)
    assert [pricing(store.caches, at) for at in (ms(5), ms(16), ms(21))] == [4, 5, 6]
    store.close()


def test_a_tariff_sent_after_one_waiting_for_an_earlier_day_keeps_it(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    publish(store, 4, starting(15, version=2))
    held = publish(store, 5, starting(1, version=3))  # sent later, but due sooner
    assert [pricing(held, at) for at in (MORNING_MS, ms(5), ms(20))] == [None, 5, 4]
    store.close()


def test_a_database_from_before_keeps_its_previous_tariff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An older agent kept the one tariff replaced under `tariff.previous`.
    path = tmp_path / "agent.db"
    database_before(path, "earlier_tariffs", monkeypatch)
    for kind, version, tariff in (("tariff.previous", 3, CURRENT), ("tariff", 4, starting(1, 2))):
        payload = encode_tariff(tariff)
        insert_cache(path, kind, version, hashlib.sha256(payload).digest(), payload, 0)
    store = open_store(tmp_path)
    assert [c.version for c in store.caches.tariffs] == [3, 4]
    assert pricing(store.caches, MORNING_MS) == 3
    publish(store, 5, starting(1, version=3))
    assert [c.version for c in store.caches.tariffs] == [3, 5]
    store.close()
