"""Shared by the tariff tests: the fixture feeds, the worked example, and local times."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from farebox.protocol.tariffs.gtfs import import_gtfs
from farebox.protocol.tariffs.native import load_tariff
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.zones import zone

HERE = Path(__file__).parent
REPO = HERE.parents[2]
EXAMPLE = REPO / "packaging" / "tariffs" / "city-kzt.toml"
ALMATY = zone("Asia/Almaty")
TORONTO = zone("America/Toronto")


def feed_files(name: str, **overrides: str | None) -> dict[str, str]:
    """A fixture feed's files; `fare_leg_rules="..."` replaces one, None removes it."""
    files = {p.name: p.read_text(encoding="utf-8") for p in (HERE / "feeds" / name).iterdir()}
    for stem, text in overrides.items():
        if text is None:
            files.pop(f"{stem}.txt", None)
        else:
            files[f"{stem}.txt"] = text
    return files


def metro(**overrides: str | None) -> Tariff:
    return import_gtfs(feed_files("metro", **overrides))


def example() -> Tariff:
    return load_tariff(EXAMPLE.read_text(encoding="utf-8"))


def almaty(day: int, clock: str) -> datetime:
    """A local time in Almaty on a day of March 2026 (2 March is a Monday)."""
    hour, minute = (int(part) for part in clock.split(":"))
    return datetime(2026, 3, day, hour, minute, tzinfo=ALMATY)


def toronto(month: int, day: int, clock: str) -> datetime:
    hour, minute = (int(part) for part in clock.split(":"))
    return datetime(2026, month, day, hour, minute, tzinfo=TORONTO)


def flat_document(header: dict[str, object] | None = None, **sections: object) -> dict[str, object]:
    """A small native document (one bus network, 100.00 a ride) with parts replaced."""
    document: dict[str, object] = {
        "tariff": {
            "id": "flat",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00+05:00",
            "currency": "KZT",
            "timezone": "Asia/Almaty",
            **(header or {}),
        },
        "rider_categories": [{"id": "adult", "default": True}],
        "networks": [{"id": "bus", "routes": ["1", "2"]}],
        "products": [{"id": "ride", "amount": "100"}],
        "leg_rules": [{"product": "ride", "leg_group": "bus", "network": "bus"}],
    }
    document.update(sections)
    return document
