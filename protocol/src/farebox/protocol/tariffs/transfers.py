"""Transfers: how consecutive fare legs combine into the cost of a sub-journey.

This is GTFS-Fares v2's `fare_transfer_rules.txt`. A sub-journey starts at a fare leg
costing A. At each next fare leg B, the transfer rules from the last leg's group to B's
group are found (an exact group first; an empty group field stands for every group not
listed). A rule applies while the sub-journey's transfer count stays within its
`transfer_count` and the time between the validations its `duration_limit_type` names
stays within `duration_limit`; when several apply, the smallest `transfer_count` wins,
then the cheapest result. The limit is measured from the first leg of the run of
consecutive transfers under the same rule. The sub-journey's cost S then becomes:

    type 0 (A + AB)       S + AB
    type 1 (A + AB + B)   S + AB + B
    type 2 (AB)           AB at the first transfer, S + AB after

where AB is the price of the rule's product for the rider (zero without one). With no
rule, the sub-journey ends and B starts the next one.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from farebox.protocol.tariffs.legs import FareLeg
from farebox.protocol.tariffs.model import DurationLimitType, FareTransferType, TransferRule
from farebox.protocol.tariffs.tariff import Tariff


class SubJourney(NamedTuple):
    """The open sub-journey: its cost so far and where the current run of a rule began."""

    last: FareLeg
    cost: int
    run_start: FareLeg
    transfers: int = 0
    rule_index: int | None = None


class Fares(NamedTuple):
    """The pay-as-you-go cost of the journey so far: closed sub-journeys plus the open one."""

    closed: int = 0
    open: SubJourney | None = None

    @property
    def total(self) -> int:
        return self.closed + (0 if self.open is None else self.open.cost)


def _elapsed(kind: DurationLimitType, start: FareLeg, end: FareLeg) -> float:
    begin: datetime = (
        start.departure
        if kind
        in (DurationLimitType.DEPARTURE_TO_ARRIVAL, DurationLimitType.DEPARTURE_TO_DEPARTURE)
        else start.arrival
    )
    finish: datetime = (
        end.arrival
        if kind in (DurationLimitType.DEPARTURE_TO_ARRIVAL, DurationLimitType.ARRIVAL_TO_ARRIVAL)
        else end.departure
    )
    return (finish - begin).total_seconds()


def add_leg(
    tariff: Tariff, fares: Fares, leg: FareLeg, category: str | None, media: str | None
) -> tuple[Fares, tuple[int, TransferRule] | None]:
    """Add the next fare leg; return the new fares and the transfer rule applied, if any."""
    sub = fares.open
    before = None if sub is None else sub.last.leg_group_id
    after = leg.leg_group_id
    if sub is None or before is None or after is None or not tariff.transfer_rules:
        return _start(fares, leg), None
    best: tuple[float, int, int] | None = None
    chosen: tuple[SubJourney, tuple[int, TransferRule]] | None = None
    count = sub.transfers + 1
    for index, rule in tariff.transfers_between.get((before, after), ()):
        if count > rule.count_limit:
            continue
        run_start = sub.run_start if index == sub.rule_index else sub.last
        if (
            rule.duration_limit is not None
            and rule.duration_limit_type is not None
            and _elapsed(rule.duration_limit_type, run_start, leg) > rule.duration_limit
        ):
            continue
        transfer = 0
        if rule.fare_product_id is not None:
            price = tariff.price(rule.fare_product_id, category, media)
            if price is None:
                continue
            transfer = price.minor
        if rule.fare_transfer_type is FareTransferType.A_PLUS_AB_PLUS_B:
            cost = sub.cost + transfer + leg.amount.minor
        elif rule.fare_transfer_type is FareTransferType.AB and sub.transfers == 0:
            cost = transfer
        else:
            cost = sub.cost + transfer
        rank = (rule.count_limit, cost, index)
        if best is None or rank < best:
            best = rank
            moved = SubJourney(leg, cost, run_start, count, index)
            chosen = (moved, (index, rule))
    if chosen is None:
        return _start(fares, leg), None
    return Fares(fares.closed, chosen[0]), chosen[1]


def _start(fares: Fares, leg: FareLeg) -> Fares:
    return Fares(fares.total, SubJourney(leg, leg.amount.minor, leg))
