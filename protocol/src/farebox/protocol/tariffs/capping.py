"""Fare capping (our extension to GTFS-Fares v2): a rider pays at most a cap per period.

Periods are local to the tariff: a fare day starts at the tariff's `fare_day_start` (say
03:00, so a ride at 01:30 belongs to the evening before), and a fare week is the ISO week
(Monday first) of the fare day. What a rider was charged counts toward every cap that
applies to their category and the leg's network; a leg is charged at most what the
tightest of those caps has left.

The running total of a cap is what the rider was actually charged in its period, and a
leg is charged `min(fare, cap - charged)`. No fare that enters a cap is negative: a leg
that lowers its journey's cost is charged nothing and its credit is kept aside (see
`credits`), so a credit never gives room back under a cap for later legs to fill. Credit
taken off a later leg is not counted as charged, so a day partly paid by credit still
reaches its cap rather than stopping short of it.
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


class CapRoom(NamedTuple):
    """The caps on a leg: what the tightest has left, that cap, and each one's period total."""

    left: int
    cap: Cap
    totals: tuple[tuple[int, CapSpend], ...]


def cap_room(
    tariff: Tariff,
    spends: tuple[CapSpend | None, ...],
    category: str | None,
    network: str | None,
    day: date,
) -> CapRoom | None:
    """The caps that apply to this leg and what they have left (None: no cap applies).

    `spends` has one entry per cap of the tariff, in order (empty before the first leg).
    """
    applying = tariff.caps_for.get((category or tariff.default_category, network))
    if not applying:
        return None
    totals = []
    left, cutting = 0, None
    for index in applying:
        cap = tariff.caps[index]
        key = period_key(cap, day)
        held = spends[index] if spends else None
        spent = held.spent if held is not None and held.period == key else 0
        totals.append((index, CapSpend(key, spent)))
        if cutting is None or cap.amount.minor - spent < left:
            left, cutting = cap.amount.minor - spent, cap
    return None if cutting is None else CapRoom(left, cutting, tuple(totals))


def record_spend(
    tariff: Tariff, spends: tuple[CapSpend | None, ...], room: CapRoom | None, charged: int
) -> tuple[CapSpend | None, ...]:
    """The running totals once a leg is charged `charged` (never negative, at most `left`)."""
    if room is None:
        return spends
    current: list[CapSpend | None] = list(spends) if spends else [None] * len(tariff.caps)
    for index, total in room.totals:
        current[index] = CapSpend(total.period, total.spent + charged)
    return tuple(current)
