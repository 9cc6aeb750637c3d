"""A state database with no configured cap is capped below its file system: a database
that fills the file system cannot take the acknowledgement that would free it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from farebox.agent.store.database import PAGE_SIZE, RESERVE_BYTES, automatic_cap, connect
from farebox.agent.store.state import Store
from farebox.protocol.records import ClockState
from tests.agent.sync.test_full_journal import fill
from tests.support.records import MORNING_MS, ROUTE_12, accepted_tap

MIB = 2**20


def test_the_automatic_cap_leaves_a_tenth_of_the_free_space_the_reserve_or_half() -> None:
    assert RESERVE_BYTES == 16 * MIB
    assert automatic_cap(10 * MIB, 1000 * MIB) == 10 * MIB + 900 * MIB
    assert automatic_cap(10 * MIB, 100 * MIB) == 10 * MIB + 84 * MIB
    assert automatic_cap(10 * MIB, 8 * MIB) == 10 * MIB + 4 * MIB  # an offline bus taps on
    assert automatic_cap(10 * MIB, 0) == 10 * MIB


def test_a_database_with_no_cap_configured_is_capped_below_its_file_system(
    tmp_path: Path,
) -> None:
    free = shutil.disk_usage(tmp_path).free
    conn = connect(tmp_path / "agent.db", lock_timeout_ms=100)
    try:
        (pages,) = conn.execute("PRAGMA max_page_count").fetchone()
    finally:
        conn.close()
    expected = free - min(max(RESERVE_BYTES, free // 10), free // 2)
    assert abs(pages * PAGE_SIZE - expected) <= MIB


@pytest.fixture
def small_file_system(tmp_path: Path) -> Iterator[Path]:
    """A real 12 MiB file system (a tmpfs), to be filled; mounting one needs root."""
    where = tmp_path / "sd-card"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(where)],
        capture_output=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_journal_on_a_full_file_system_is_back_in_service_once_acknowledged(
    small_file_system: Path,
) -> None:
    store = Store.open(small_file_system / "agent.db", "bus-017", lock_timeout_ms=500)
    try:
        taps = fill(store, 0)  # until the journal refuses a tap
        assert taps > 100
        assert shutil.disk_usage(small_file_system).free > 0  # the database is, not the disk
        store.acknowledge(store.cursor, MORNING_MS + taps * 1000)  # the server holds them
        store.probe()  # back in service
        store.record(MORNING_MS + taps * 1000, ClockState.SYNCED, ROUTE_12, accepted_tap())
    finally:
        store.close()
