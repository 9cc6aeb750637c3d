"""The tariff engine as the ledger's `Rater`: settlement re-rates a day with the same code
the validators quote with (`farebox.protocol.tariffs`).

A tap becomes a leg (its route and stop, at its time); the rider's category is the one
the day's first tap carried. Each tap is priced by the tariff in force at its time, by
the protocol's `in_force` over every published tariff, as the validator that took it
chose: a tariff published ahead of its day prices none of the days before it, and a late
tap re-settling an old day is priced as it was then.

The engine counts caps per its own fare day, so a tariff's time zone and day start must
be the ledger's: `matching` refuses a mismatched one when it is published, and a day a
tariff of other fare days is in force for cannot be rated. A day that cannot be rated
(no tariff in force at a tap, a leg no rule prices, a rider category the tariff lacks) is
an UnratableDayError, so that settlement parks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.tariffs import Leg, NoFareError, Rider, Tariff, in_force, rate
from farebox.server import environment as env
from farebox.server.errors import ConfigurationError
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.settlement import DayTap, UnratableDayError

UNKNOWN_STOP = "unknown"
"""The stop of a leg whose tap carried none; it matches no area-specific rule."""


def _other_fare_days(tariff: Tariff, policy: FareDayPolicy) -> str | None:
    """How `tariff`'s fare days differ from the ledger's, or None if they do not."""
    if tariff.zone.key == policy.zone.key and tariff.fare_day_start == policy.start_s:
        return None
    return (
        f"tariff {tariff.id} {tariff.version} fare days ({tariff.zone.key},"
        f" {tariff.fare_day_start} s) differ from the ledger's ({policy.zone.key},"
        f" {policy.boundary.isoformat('minutes')})"
    )


def refuse_unratable(tariff: Tariff, policy: FareDayPolicy, currency: str) -> None:
    """ConfigurationError if settlement could not rate days by `tariff`: its fare days or
    its currency are not the ledger's. A tariff is checked so when it is published."""
    problem = _other_fare_days(tariff, policy)
    if problem is None and tariff.currency != currency:
        problem = (
            f"tariff {tariff.id} {tariff.version} is in {tariff.currency},"
            f" the ledger's fares in {currency} ({env.FAREBOX_CURRENCY})"
        )
    if problem is not None:
        raise ConfigurationError(problem)


@dataclass(frozen=True, slots=True)
class TariffRater:
    """Rates a rider's fare day, each tap with the tariff in force at its time."""

    tariffs: tuple[Tariff, ...]
    """Every published tariff, oldest first: the order a validator holds them in, by which
    `in_force` settles a tie."""
    policy: FareDayPolicy

    @classmethod
    def matching(cls, tariff: Tariff, policy: FareDayPolicy) -> TariffRater:
        """A rater of `tariff` alone, if its fare days are the ledger's."""
        problem = _other_fare_days(tariff, policy)
        if problem is not None:
            raise ConfigurationError(problem)
        return cls((tariff,), policy)

    def __call__(self, account: str, day: date, taps: Sequence[DayTap]) -> Sequence[Money]:
        if not taps:
            return []
        rider = Rider(taps[0].category)
        amounts: dict[int, Money] = {}
        try:
            legs = [
                Leg(
                    tap.route,
                    tap.stop or UNKNOWN_STOP,
                    datetime.fromtimestamp(tap.time_ms / 1000, UTC),
                )
                for tap in taps
            ]
            chosen = [
                self._tariff_at(tap, leg.departure) for tap, leg in zip(taps, legs, strict=True)
            ]
            # A validator quotes a tap after the day's earlier legs under the tariff it
            # quotes with, so each leg costs what its tariff makes of the day up to it.
            for tariff in self.tariffs:
                own = [index for index, used in enumerate(chosen) if used is tariff]
                if own:
                    fare = rate(tariff, rider, legs[: own[-1] + 1])
                    amounts.update((index, fare.legs[index].amount) for index in own)
        except (NoFareError, InvalidValueError) as error:
            raise UnratableDayError(str(error)) from error
        return [amounts[index] for index in range(len(taps))]

    def _tariff_at(self, tap: DayTap, moment: datetime) -> Tariff:
        tariff = in_force(self.tariffs, moment)
        if tariff is None:
            raise UnratableDayError(f"{tap.key}: no tariff in force at {moment.isoformat()}")
        problem = _other_fare_days(tariff, self.policy)
        if problem is not None:
            raise UnratableDayError(f"{tap.key}: {problem}")
        if tariff.currency != tap.charged.currency:
            raise UnratableDayError(
                f"{tap.key}: tariff {tariff.id} {tariff.version} is in {tariff.currency},"
                f" the fare in {tap.charged.currency}"
            )
        return tariff
