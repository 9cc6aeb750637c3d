"""A stoplist the server confirms current stays fresh: a 304 is stored as the time the
list was last confirmed, on a real SQLite file, and its age counts from there."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from farebox.agent.decision import STALE_STOPLIST, LocalHistory, Now, decide
from farebox.agent.policy import HOUR_MS, Policy, StalePolicy
from farebox.agent.runtime import wall_ms
from farebox.agent.status import gather
from farebox.agent.store.caches import CONFIRM_EVERY_MS
from farebox.agent.store.state import Store
from farebox.agent.store.stoplist import StoplistIndex
from farebox.protocol.packages import PackageKind
from farebox.protocol.records import ClockState, Outcome
from farebox.protocol.stoplist import StoplistChange
from farebox.protocol.tariffs.wire import encode_tariff
from tests.agent.builders import card, city_tariff
from tests.agent.harness import agent_config, until
from tests.agent.older_schema import database_before, insert_cache
from tests.agent.sync.conftest import Validator
from tests.agent.sync.server import PACKAGE_KEY, SyncServer, whole_package
from tests.agent.sync.test_packages import package_requests, stoplist
from tests.support.records import ROUTE_12

DENY_UNKNOWN = Policy(stale=StalePolicy.DENY_UNKNOWN)


def confirmed_row(database: Path) -> int:
    conn = sqlite3.connect(database)
    try:
        (confirmed,) = conn.execute(
            "SELECT confirmed_ms FROM caches WHERE kind = 'stoplist'"
        ).fetchone()
    finally:
        conn.close()
    return int(confirmed)


async def test_a_stoplist_the_server_confirms_is_not_stale_a_day_later(
    server: SyncServer, validator: Validator
) -> None:
    server.publish(whole_package(PackageKind.TARIFF, 1, encode_tariff(city_tariff())))
    server.publish(stoplist(1, None, {"nfc:01"}, set(), {"nfc:01"}))
    ahead = [0]
    service = validator.service()
    service.clock = lambda: wall_ms() + ahead[0]
    validator.stop = asyncio.Event()
    validator.task = asyncio.create_task(service.run(validator.stop))
    await until(lambda: validator.store.caches.stoplist.version == 1)
    ahead[0] = 25 * HOUR_MS  # a quiet day later: no token entered or left the list
    asked = len(package_requests(server, "stoplist"))
    await until(lambda: len(package_requests(server, "stoplist")) >= asked + 2)
    await validator.halt()
    now_ms = wall_ms() + ahead[0]
    caches = validator.store.caches
    assert caches.stoplist.version == 1
    assert caches.stoplist.confirmed_ms is not None
    assert caches.stoplist.confirmed_ms >= now_ms - HOUR_MS
    assert confirmed_row(validator.directory / "agent.db") == caches.stoplist.confirmed_ms
    stranger = card(b"\x04\x99\x99\x99", at_ms=now_ms)
    decision = decide(
        stranger, caches, LocalHistory(), Now(now_ms, ClockState.SYNCED), ROUTE_12, DENY_UNKNOWN
    )
    assert decision.tap.outcome is Outcome.ACCEPT
    assert STALE_STOPLIST not in decision.tap.flags
    assert gather(agent_config(validator.directory), now_ms)["stoplist_stale"] is False


def open_store(directory: Path) -> Store:
    return Store.open(directory / "agent.db", "bus-017", lock_timeout_ms=200)


def held(store: Store) -> tuple[int, int | None]:
    return store.caches.stoplist.version, store.caches.stoplist.confirmed_ms


def test_only_the_version_held_is_confirmed_and_the_confirmation_is_kept(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.confirm_stoplist(0, 50)  # no list held: nothing to confirm, it stays stale
    assert held(store) == (0, None)
    store.apply_package(
        stoplist(1, None, {"nfc:01"}, set(), {"nfc:01"}), [PACKAGE_KEY.verify_key], 5
    )
    later = 5 + CONFIRM_EVERY_MS
    store.confirm_stoplist(2, later)  # an answer about a version not held
    assert held(store) == (1, 5)
    store.confirm_stoplist(1, later)
    store.close()
    store = open_store(tmp_path)
    assert held(store) == (1, later)
    assert "nfc:01" in store.caches.stoplist
    # Confirmations within the hour after are not written: the SD card is spared.
    store.confirm_stoplist(1, later + CONFIRM_EVERY_MS - 1)
    assert held(store) == (1, later)
    store.confirm_stoplist(1, later + CONFIRM_EVERY_MS)
    assert held(store) == (1, later + CONFIRM_EVERY_MS)
    store.close()


def test_a_database_from_before_counts_from_when_its_list_was_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agent.db"
    database_before(path, "stoplist_confirmed", monkeypatch)
    change = StoplistChange(full=True, added=frozenset({"nfc:01"}), removed=frozenset())
    index = StoplistIndex().applied(change, 1, 5)
    insert_cache(path, "stoplist", 1, index.checksum.digest(), index.to_bytes(), 5)
    store = open_store(tmp_path)
    assert held(store) == (1, 5)
    assert "nfc:01" in store.caches.stoplist
    store.close()
