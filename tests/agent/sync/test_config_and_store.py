"""The `[sync]` config section, sync windows, what the sync adds to the store (rewinding
the acks, packages prepared off the store thread), and `status`'s sync fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farebox.agent import environment
from farebox.agent.cli import main
from farebox.agent.config import load_config, parse_config
from farebox.agent.errors import CacheError, ConfigError
from farebox.agent.store.state import Store
from farebox.agent.sync.report import Reporter, read_sync_report
from farebox.agent.sync.windows import SyncWindows
from farebox.protocol import cbor
from farebox.protocol.chain import Cursor
from farebox.protocol.packages import PackageKind
from farebox.protocol.records import ClockState
from tests.agent.sync.server import PACKAGE_KEY, whole_package
from tests.support.records import MORNING_MS, ROUTE_12, accepted_tap


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 26, hour, minute, tzinfo=UTC)


def test_sync_windows_may_cross_midnight() -> None:
    depot = SyncWindows.parse(["22:00-06:00", "12:30-13:00"])
    assert [depot.open_at(at(h, m)) for h, m in ((23, 0), (5, 59), (6, 0), (12, 45), (9, 0))] == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert depot.seconds_until_open(at(9, 0)) == 3.5 * 3600
    assert depot.seconds_until_open(at(14, 0)) == 8 * 3600
    assert depot.seconds_until_open(at(23, 0)) == 0
    assert SyncWindows().open_at(at(3))
    assert SyncWindows.parse(["00:00-24:00"]).open_at(at(23, 59))


def test_the_sync_section_is_checked_with_every_problem_listed(tmp_path: Path) -> None:
    document: dict[str, object] = {
        "device": {"id": "bus-1"},
        "state": {"directory": "x"},
        "sync": {
            "server": "ftp://x",
            "max_batch_records": 9000,
            "windows": ["25:00-06:00"],
            "retry_initial_s": 0,
            "colour": 1,
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(document, {})
    problems = "\n".join(caught.value.problems)
    for expected in (
        "sync.server",
        "sync.max_batch_records must be at most 5000",
        "sync.windows",
        "sync.retry_initial_s",
        "unknown key 'colour'",
    ):
        assert expected in problems
    path = tmp_path / "agent.toml"
    path.write_text(
        '[device]\nid = "bus-1"\n[state]\ndirectory = "x"\n'
        '[sync]\nwindows = ["22:00-06:00"]\nflush_interval_s = 5\n'
    )
    config = load_config(path, {environment.FAREBOX_AGENT_SERVER: "https://s.example"})
    assert config.sync.server == "https://s.example"
    assert config.sync.windows == SyncWindows.parse(["22:00-06:00"])
    assert config.sync.flush_interval_s == 5


def test_rewinding_the_acks_to_a_server_cursor(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "agent.db", "bus-1", lock_timeout_ms=200)
    entries = [
        store.record(MORNING_MS + i, ClockState.SYNCED, ROUTE_12, accepted_tap()) for i in range(6)
    ]
    store.acknowledge(Cursor(6, entries[5].digest), MORNING_MS + 10)
    assert store.resume_point(3) == entries[2].digest
    assert store.resume_point(0) == Cursor.start("bus-1").head
    store.unacknowledge(Cursor(3, entries[2].digest))
    assert store.acked == Cursor(3, entries[2].digest)
    assert [e.record.seq for e in store.pending(10)] == [4, 5, 6]
    assert store.prune(MORNING_MS + 11, retention_ms=0, history_ms=0) == 3  # 1..3 only
    assert store.resume_point(2) is None  # pruned: records after it cannot all be resent
    assert store.resume_point(3) is None
    assert store.resume_point(4) == entries[3].digest
    store.close()
    store = Store.open(tmp_path / "agent.db", "bus-1", lock_timeout_ms=200)
    assert store.acked.seq == 3  # the rewind is durable
    store.close()


def test_a_package_prepared_over_older_caches_is_not_stored(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "agent.db", "bus-1", lock_timeout_ms=200)
    trusted = [PACKAGE_KEY.verify_key]
    first = whole_package(PackageKind.CONFIG, 1, cbor.encode({"in_service": True}))
    second = whole_package(PackageKind.CONFIG, 2, cbor.encode({"in_service": False}))
    prepared = store.prepare_package(second, trusted, MORNING_MS)
    store.apply_package(first, trusted, MORNING_MS)
    with pytest.raises(CacheError, match="changed"):
        store.commit_package(prepared, MORNING_MS)
    assert store.caches.versions()["config"] == 1
    store.commit_package(store.prepare_package(second, trusted, MORNING_MS), MORNING_MS)
    store.close()
    store = Store.open(tmp_path / "agent.db", "bus-1", lock_timeout_ms=200)
    assert store.caches.config is not None
    assert store.caches.config.value == {"in_service": False}
    store.close()


def test_status_shows_the_sync(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'[device]\nid = "bus-1"\n[state]\ndirectory = "{tmp_path}"\n')
    assert main(["status", "--config", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sync"]["state"] == "not enrolled"
    reporter = Reporter(tmp_path, "https://s.example", lambda: MORNING_MS)
    reporter.halted("batch refused (fork)")
    assert main(["status", "--config", str(path), "--json"]) == 0
    sync = json.loads(capsys.readouterr().out)["sync"]
    assert (sync["state"], sync["halted"]) == ("uploads_halted", "batch refused (fork)")
    assert main(["status", "--config", str(path)]) == 0
    assert "uploads_halted" in capsys.readouterr().out


def test_an_outage_keeps_its_first_time_until_its_own_requests_are_answered(
    tmp_path: Path,
) -> None:
    now = [MORNING_MS]
    reporter = Reporter(tmp_path, "https://s.example", lambda: now[0])
    reporter.error("POST /v1/batches answered 503", "uploads")
    now[0] += 60_000
    reporter.answered("heartbeats")  # they get through meanwhile
    reporter.error("POST /v1/batches answered 503", "uploads")  # retried: the same outage
    assert reporter.report.last_error_ms == MORNING_MS
    reporter.answered("uploads")  # the server takes batches again
    now[0] += 3_600_000
    reporter.error("POST /v1/batches answered 503", "uploads")  # an hour later, down again
    assert reporter.report.last_error_ms == MORNING_MS + 3_660_000
    assert (read_sync_report(tmp_path) or {})["last_error_ms"] == MORNING_MS + 3_660_000
