"""Fare capping (our extension to GTFS-Fares v2): a rider pays at most a cap per period.

Periods are local to the tariff: a fare day starts at the tariff's `fare_day_start` (say
03:00, so a ride at 01:30 belongs to the evening before), and a fare week is the ISO week
(Monday first) of the fare day. What a rider was charged counts toward every cap that
applies to their category and the leg's network; a leg is charged at most what the
tightest of those caps has left. A negative charge (a transfer credit) gives room back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from farebox.protocol.tariffs.model import Cap, CapPeriod
from farebox.protocol.tariffs.tariff import Tariff


def fare_day(tariff: Tariff, moment: datetime) -> date:
    """The local fare day a moment belongs to."""
    local = moment.astimezone(tariff.zone)
    return (local - timedelta(seconds=tariff.fare_day_start)).date()


def period_key(cap: Cap, day: date) -> tuple[int, int]:
    if cap.period is CapPeriod.DAY:
        return (day.toordinal(), 0)
    year, week, _ = day.isocalendar()
    return (year, week)


@dataclass(frozen=True, slots=True)
class CapSpend:
    """What the rider was charged toward one cap in its current period."""

    cap_id: str
    period: tuple[int, int]
    spent: int


def apply_caps(
    tariff: Tariff,
    spends: tuple[CapSpend, ...],
    charge: int,
    category: str | None,
    network: str | None,
    day: date,
) -> tuple[int, tuple[CapSpend, ...], Cap | None]:
    """Cut `charge` to what the caps allow; return it, the new spends and the cap that cut."""
    if not tariff.caps:
        return charge, spends, None
    category = category or tariff.default_category
    current = {s.cap_id: s for s in spends}
    applying: list[tuple[Cap, tuple[int, int], int]] = []
    for cap in tariff.caps:
        if not cap.applies(category, network):
            continue
        key = period_key(cap, day)
        held = current.get(cap.id)
        spent = held.spent if held is not None and held.period == key else 0
        applying.append((cap, key, spent))
    cutting: Cap | None = None
    for cap, _, spent in applying:
        room = cap.amount.minor - spent
        if charge > room:
            charge, cutting = room, cap
    for cap, key, spent in applying:
        current[cap.id] = CapSpend(cap.id, key, spent + charge)
    return charge, tuple(current[c.id] for c in tariff.caps if c.id in current), cutting
