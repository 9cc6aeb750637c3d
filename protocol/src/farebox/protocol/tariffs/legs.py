"""Fare legs: which fare leg rule prices a leg, and which legs join into one.

Matching follows GTFS-Fares v2. A rule matches when each of its non-empty fields matches
the leg: the network of the leg's route, an area of the departure stop, an area of the
arrival stop, a timeframe at the departure and one at the arrival. An empty field:

- with priority semantics (the `rule_priority` column exists, and always in our native
  format) matches anything;
- with GTFS's empty semantics (no `rule_priority` column) matches only a value that no
  rule of the tariff lists; empty timeframe fields match anything either way.

Of the matching rules the highest priority wins. Rules left at that priority are
alternative products; the engine charges the rider the cheapest (ties: the earliest rule).

Two consecutive legs are one effective fare leg when a join rule names their networks
and their transfer stops (or, without stops, when they meet at the same stop or station).
The effective leg departs from its first leg, arrives with its last, and has a network
only when all its legs share one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from farebox.protocol.money import Money
from farebox.protocol.tariffs.journey import Leg
from farebox.protocol.tariffs.model import LegRule
from farebox.protocol.tariffs.tariff import Tariff


class FareLeg(NamedTuple):
    """An effective fare leg priced for one rider: `legs` are journey legs from `first`.

    The engine's working values (this, `SubJourney`, `Fares`, `CapSpend`) are named tuples:
    immutable like the public dataclasses, but several are built per tap and a tuple is
    built several times faster, which keeps a quote within its budget.
    """

    first: int
    legs: tuple[Leg, ...]
    network_id: str | None
    amount: Money
    rule_index: int | None
    rule: LegRule | None

    @property
    def leg_group_id(self) -> str | None:
        return None if self.rule is None else self.rule.leg_group_id

    @property
    def departure(self) -> datetime:
        return self.legs[0].departure

    @property
    def arrival(self) -> datetime:
        return self.legs[-1].end


def network_of(tariff: Tariff, legs: Sequence[Leg]) -> str | None:
    """The network all `legs` share, or None if they have none in common."""
    network = tariff.route_network.get(legs[0].route_id)
    return (
        network if all(tariff.route_network.get(leg.route_id) == network for leg in legs) else None
    )


def _areas(tariff: Tariff, stop_id: str | None) -> frozenset[str]:
    stop = tariff.stop_index.get(stop_id) if stop_id is not None else None
    return frozenset() if stop is None else stop.area_ids


def _in_timeframe(tariff: Tariff, group: str, local: datetime) -> bool:
    return any(frame.contains(local) for frame in tariff.timeframe_groups[group])


def match(
    tariff: Tariff, first: int, legs: tuple[Leg, ...], category: str | None, media: str | None
) -> FareLeg | None:
    """The fare leg rule that prices `legs` as one effective fare leg for this rider."""
    network = network_of(tariff, legs)
    from_areas = _areas(tariff, legs[0].from_stop_id)
    to_areas = _areas(tariff, legs[-1].to_stop_id)
    # whether an empty rule field matches this leg is the same for every rule: decide once
    loose = tariff.priority_semantics
    listed = tariff.listed
    any_network = loose or network not in listed["network"]
    any_from = loose or from_areas.isdisjoint(listed["from_area"])
    any_to = loose or to_areas.isdisjoint(listed["to_area"])
    start: datetime | None = None
    end: datetime | None = None
    best: tuple[int, int, int] | None = None
    chosen: FareLeg | None = None
    # candidates come highest priority first, so a match ends the search at lower ones
    for index, rule in tariff.rules_by_network.get(network, tariff.rules_by_network[None]):
        if best is not None and -rule.priority > best[0]:
            break
        wanted = rule.network_id
        if (wanted is None and not any_network) or (wanted is not None and wanted != network):
            continue
        wanted = rule.from_area_id
        if (wanted is None and not any_from) or (wanted is not None and wanted not in from_areas):
            continue
        wanted = rule.to_area_id
        if (wanted is None and not any_to) or (wanted is not None and wanted not in to_areas):
            continue
        if rule.from_timeframe_group_id is not None:
            start = start or legs[0].departure.astimezone(tariff.zone)
            if not _in_timeframe(tariff, rule.from_timeframe_group_id, start):
                continue
        if rule.to_timeframe_group_id is not None:
            end = end or legs[-1].end.astimezone(tariff.zone)
            if not _in_timeframe(tariff, rule.to_timeframe_group_id, end):
                continue
        amount = tariff.price(rule.fare_product_id, category, media)
        if amount is None:
            continue
        rank = (-rule.priority, amount.minor, index)
        if best is None or rank < best:
            best = rank
            chosen = FareLeg(first, legs, network, amount, index, rule)
    return chosen


def _station(tariff: Tariff, stop_id: str) -> str:
    stop = tariff.stop_index.get(stop_id)
    return stop_id if stop is None or stop.parent_station is None else stop.parent_station


def _at(tariff: Tariff, stop_id: str, wanted: str) -> bool:
    return stop_id == wanted or _station(tariff, stop_id) == wanted


def joins(tariff: Tariff, before: Leg, after: Leg) -> bool:
    """Whether a join rule makes `before` and `after` one effective fare leg."""
    if before.to_stop_id is None or not tariff.join_rules:
        return False
    from_network = tariff.route_network.get(before.route_id)
    to_network = tariff.route_network.get(after.route_id)
    for rule in tariff.join_rules:
        if rule.from_network_id != from_network or rule.to_network_id != to_network:
            continue
        if rule.from_stop_id is None or rule.to_stop_id is None:
            same = _station(tariff, before.to_stop_id) == _station(tariff, after.from_stop_id)
        else:
            same = _at(tariff, before.to_stop_id, rule.from_stop_id) and _at(
                tariff, after.from_stop_id, rule.to_stop_id
            )
        if same:
            return True
    return False
