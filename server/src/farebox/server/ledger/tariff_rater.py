"""The tariff engine as the ledger's `Rater`: settlement re-rates a day with the same code
the validators quote with (`farebox.protocol.tariffs`).

A tap becomes a leg (its route and stop, at its time); the rider's category is the one
the day's first tap carried. The engine counts caps per its own fare day, so the tariff's
time zone and day start must be the ledger's: a mismatch is refused when the rater is made,
not discovered in a rider's statement. A day the engine refuses (a leg no rule prices, a
rider category the tariff lacks) is an UnratableDayError, so that settlement parks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.tariffs import Leg, NoFareError, Rider, Tariff, rate
from farebox.server.errors import ConfigurationError
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.settlement import DayTap, UnratableDayError

UNKNOWN_STOP = "unknown"
"""The stop of a leg whose tap carried none; it matches no area-specific rule."""


@dataclass(frozen=True, slots=True)
class TariffRater:
    """Rates a rider's fare day with one tariff."""

    tariff: Tariff

    @classmethod
    def matching(cls, tariff: Tariff, policy: FareDayPolicy) -> TariffRater:
        """A rater for `tariff`, if its fare days are the ledger's."""
        boundary = policy.boundary.hour * 3600 + policy.boundary.minute * 60
        if tariff.zone.key != policy.zone.key or tariff.fare_day_start != boundary:
            raise ConfigurationError(
                f"tariff fare days ({tariff.zone.key}, {tariff.fare_day_start} s) differ from"
                f" the ledger's ({policy.zone.key}, {policy.boundary.isoformat('minutes')})"
            )
        return cls(tariff)

    def __call__(self, account: str, day: date, taps: Sequence[DayTap]) -> Sequence[Money]:
        if not taps:
            return []
        try:
            legs = [
                Leg(
                    tap.route,
                    tap.stop or UNKNOWN_STOP,
                    datetime.fromtimestamp(tap.time_ms / 1000, UTC),
                )
                for tap in taps
            ]
            fare = rate(self.tariff, Rider(taps[0].category), legs)
        except (NoFareError, InvalidValueError) as error:
            raise UnratableDayError(str(error)) from error
        return [leg.amount for leg in fare.legs]
