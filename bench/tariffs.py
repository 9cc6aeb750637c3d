"""Benchmark the tariff engine: microseconds per tap for a rider's day of six taps.

Run from the repository root: `.venv/bin/python -m bench.tariffs`. The ceiling, measured
in the same run, is the least a fare lookup can cost: a flat fare read from a dict by
route, once per tap. Target (ARCHITECTURE section 11): <= 50 microseconds per tap.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from bench.table import Row, microseconds_each, render
from farebox.protocol.money import Money
from farebox.protocol.tariffs.engine import quote, rate
from farebox.protocol.tariffs.gtfs import import_gtfs
from farebox.protocol.tariffs.journey import Leg, Rider
from farebox.protocol.tariffs.native import load_tariff
from farebox.protocol.tariffs.zones import zone

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "packaging" / "tariffs" / "city-kzt.toml"
FEED = ROOT / "tests" / "protocol" / "tariffs" / "feeds" / "metro"
TAPS = 6
DAYS = 20_000
TARGET = "<= 50 us per tap"


def _day(name: str, stops: list[tuple[str, str, str | None]]) -> list[Leg]:
    start = datetime(2026, 3, 2, 7, 30, tzinfo=zone(name))
    legs = []
    for number, (route, frm, to) in enumerate(stops):
        on = start + timedelta(minutes=35 * number)
        legs.append(Leg(route, frm, on, to, None if to is None else on + timedelta(minutes=20)))
    return legs


def main() -> None:
    example = load_tariff(EXAMPLE.read_text(encoding="utf-8"))
    feed = import_gtfs({p.name: p.read_text(encoding="utf-8") for p in FEED.iterdir()})
    example_day = _day(
        "Asia/Almaty",
        [
            ("12", "a", None),
            ("M1", "b", None),
            ("92", "c", None),
            ("32", "d", None),
            ("S1", "S1-sayakhat", "S1-airport"),
            ("121", "e", None),
        ],
    )
    feed_day = _day(
        "America/Toronto",
        [
            ("bus1", "s2", None),
            ("sub1", "king-1", "union-1"),
            ("sub2", "union-2", "s3"),
            ("bus2", "s3", None),
            ("rail", "union-r", "r-suburb"),
            ("exp", "s2", "s3"),
        ],
    )
    student = Rider("student", "card")
    fares = {
        "12": Money(20000, "KZT"),
        "M1": Money(25000, "KZT"),
        "92": Money(20000, "KZT"),
        "32": Money(20000, "KZT"),
        "S1": Money(40000, "KZT"),
        "121": Money(20000, "KZT"),
    }

    def flat_day() -> list[Money]:
        return [fares[leg.route_id] for leg in example_day]

    ceiling = microseconds_each(flat_day, DAYS) / TAPS
    example_state = rate(example, student, example_day[:-1]).state
    feed_state = rate(feed, Rider(), feed_day[:-1]).state
    rows = [
        Row("example tariff (KZT): rate a 6-tap day",
            microseconds_each(lambda: rate(example, student, example_day), DAYS) / TAPS,
            "us/tap", ceiling, TARGET),
        Row("example tariff: quote the 6th tap from the rider state",
            microseconds_each(lambda: quote(example, example_state, example_day[-1]), DAYS),
            "us/tap", ceiling, TARGET),
        Row("GTFS feed (metro fixture): rate a 6-tap day",
            microseconds_each(lambda: rate(feed, Rider(), feed_day), DAYS) / TAPS,
            "us/tap", ceiling, TARGET),
        Row("GTFS feed: quote the 6th tap from the rider state",
            microseconds_each(lambda: quote(feed, feed_state, feed_day[-1]), DAYS),
            "us/tap", ceiling, TARGET),
    ]  # fmt: skip
    print(render("Fare quote per tap (ceiling: flat fare from a dict)", rows))


if __name__ == "__main__":
    main()
