"""Fare capping (our extension to GTFS-Fares v2): a rider pays at most a cap per period.

Periods are local to the tariff: a fare day starts at the tariff's `fare_day_start` (say
03:00, so a ride at 01:30 belongs to the evening before), and a fare week is the ISO week
(Monday first) of the fare day. What a rider was charged counts toward every cap that
applies to their category and the leg's network; a leg is charged at most what the
tightest of those caps has left. A negative charge (a transfer credit) gives room back.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import NamedTuple

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


class CapSpend(NamedTuple):
    """What the rider was charged toward one cap in its current period."""

    period: tuple[int, int]
    spent: int


def apply_caps(
    tariff: Tariff,
    spends: tuple[CapSpend | None, ...],
    charge: int,
    category: str | None,
    network: str | None,
    day: date,
) -> tuple[int, tuple[CapSpend | None, ...], Cap | None]:
    """Cut `charge` to what the caps allow; return it, the new spends and the cap that cut.

    `spends` has one entry per cap of the tariff, in order (empty before the first leg).
    """
    applying = tariff.caps_for.get((category or tariff.default_category, network))
    if not applying:
        return charge, spends, None
    current: list[CapSpend | None] = list(spends) if spends else [None] * len(tariff.caps)
    cutting: Cap | None = None
    periods = []
    for index in applying:
        cap = tariff.caps[index]
        key = period_key(cap, day)
        held = current[index]
        spent = held.spent if held is not None and held.period == key else 0
        if charge > cap.amount.minor - spent:
            charge, cutting = cap.amount.minor - spent, cap
        periods.append((index, key, spent))
    for index, key, spent in periods:
        current[index] = CapSpend(key, spent + charge)
    return charge, tuple(current), cutting
