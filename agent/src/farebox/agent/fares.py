"""The provisional fare: the one narrow call from `decide` into the tariff engine.

The agent knows only its own taps, so its fare is provisional; the server re-rates the
rider's day with the whole history (ARCHITECTURE section 8). Earlier accepted taps on
this validator are folded into the engine's rider state, and the new tap is quoted from
there, so transfers and caps seen here come out as the server will first post them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from farebox.agent.store.history import PastTap
from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.records import Location, Outcome, TapType
from farebox.protocol.tariffs.engine import quote, rate
from farebox.protocol.tariffs.journey import Leg, Rider
from farebox.protocol.tariffs.tariff import Tariff


@dataclass(frozen=True, slots=True)
class FareQuote:
    """What the tap costs and under which product."""

    fare: Money
    product: str | None


def utc(time_ms: int) -> datetime:
    return datetime.fromtimestamp(time_ms / 1000, UTC)


def _leg(past: PastTap) -> Leg | None:
    route, stop = past.location.route, past.location.stop
    if route is None or stop is None:
        return None
    return Leg(route, stop, utc(past.time_ms))


def provisional_fare(
    tariff: Tariff,
    rider: Rider,
    earlier: Sequence[PastTap],
    tap_type: TapType,
    location: Location,
    time_ms: int,
) -> FareQuote:
    """Quote the tap at `location` and `time_ms` after the rider's `earlier` accepted taps.

    Raises the engine's NoFareError when no rule prices it, and InvalidValueError when the
    location lacks a route or stop to price from.
    """
    accepted = [p for p in earlier if p.outcome is Outcome.ACCEPT]
    if tap_type is TapType.OFF:
        return _tap_off(tariff, rider, accepted, location, time_ms)
    legs = [leg for leg in map(_leg, accepted) if leg is not None]
    state = rate(tariff, rider, legs).state
    leg = Leg(_required(location.route, "route"), _required(location.stop, "stop"), utc(time_ms))
    priced = quote(tariff, state, leg).leg
    return FareQuote(priced.amount, priced.product_id)


def _tap_off(
    tariff: Tariff, rider: Rider, accepted: list[PastTap], location: Location, time_ms: int
) -> FareQuote:
    # The completed leg is priced from the state before its tap-on; what the tap-on held
    # (the maximum fare) is already in the journal, so the tap-off adds only what the
    # completed leg costs beyond it. A refund of the hold is the server's re-rating.
    ons = [i for i, p in enumerate(accepted) if p.tap_type is TapType.ON]
    if not ons or any(p.tap_type is TapType.OFF for p in accepted[ons[-1] :]):
        return FareQuote(Money.zero(tariff.currency), None)
    on = accepted[ons[-1]]
    before = [leg for leg in map(_leg, accepted[: ons[-1]]) if leg is not None]
    state = rate(tariff, rider, before).state
    leg = Leg(
        _required(on.location.route, "route"),
        _required(on.location.stop, "stop"),
        utc(on.time_ms),
        to_stop_id=_required(location.stop, "stop"),
        arrival=utc(time_ms),
    )
    priced = quote(tariff, state, leg).leg
    held = on.fare or Money.zero(tariff.currency)
    extra = max(priced.amount.minor - held.minor, 0)
    return FareQuote(Money(extra, tariff.currency), priced.product_id)


def _required(value: str | None, what: str) -> str:
    if value is None:
        raise InvalidValueError(f"the validator's location has no {what} to price from")
    return value
