"""Zones come from the tzdata package, so hosts with different tz databases agree on fares."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import pytest

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.tariffs.capping import fare_day
from farebox.protocol.tariffs.zones import zone
from tests.protocol.tariffs.helpers import example


@pytest.fixture
def host_with_old_almaty(tmp_path: Path) -> Iterator[Path]:
    """The host's tz path holds an Asia/Almaty from before tzdata 2024a (UTC+6)."""
    (tmp_path / "Asia").mkdir()
    old = files("tzdata.zoneinfo").joinpath("Etc", "GMT-6").read_bytes()  # GMT-6 is UTC+6
    (tmp_path / "Asia" / "Almaty").write_bytes(old)
    zoneinfo.reset_tzpath(to=[str(tmp_path)])
    zoneinfo.ZoneInfo.clear_cache()
    zone.cache_clear()
    try:
        yield tmp_path
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()
        zone.cache_clear()


def test_the_engine_ignores_the_host_tz_database(host_with_old_almaty: Path) -> None:
    host = zoneinfo.ZoneInfo("Asia/Almaty")
    assert datetime(2026, 3, 2, tzinfo=host).utcoffset() == timedelta(hours=6)  # stale host
    tariff = example()
    assert tariff.zone.key == "Asia/Almaty"
    assert datetime(2026, 3, 2, tzinfo=tariff.zone).utcoffset() == timedelta(hours=5)
    # 21:45 UTC is 02:45 in Almaty (UTC+5): still the fare day before, which starts at 03:00;
    # the host's UTC+6 would make it 03:45 and the next fare day
    assert fare_day(tariff, datetime(2026, 3, 1, 21, 45, tzinfo=UTC)) == date(2026, 3, 1)


def test_the_same_zone_is_loaded_once() -> None:
    assert zone("Asia/Almaty") is zone("Asia/Almaty")


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "asia/almaty"]
)
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(InvalidValueError, match="unknown time zone"):
        zone(name)
