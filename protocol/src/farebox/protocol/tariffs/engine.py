"""The fare engine: price a rider's legs one at a time, as a fold over rider state.

    state = RiderState.start(rider)
    quoted = quote(tariff, state, leg)      # quoted.leg: what this leg costs, and why
    state = quoted.state                     # carry on with the next leg

`rate(tariff, rider, legs)` is that fold over a whole journey or fare day, so the server's
authoritative re-rating of a day and the agent's provisional quote of one new tap run the
same code: the agent keeps the state after the rider's earlier taps and quotes the next
tap in constant time; the server rates the day from the start. Everything is a frozen
value, so the same inputs always give the same fare.

Each leg is priced in layers, and no layer charges a leg less than nothing:

1. pay as you go: the leg's fare leg rule, joined with the leg before it if a join rule
   says so, and the transfer rules of its sub-journey; the leg's `fare` is how much the
   journey's pay-as-you-go total grows with it. A type 2 transfer product or a joined leg
   cheaper than the first leg, or a negative transfer product, makes it negative: such a
   leg is charged nothing and gives the rider credit (see `credits`);
2. passes: a leg that would cost something is free under a valid period pass that covers
   its network, else it uses one ride of a multi-ride product (season pass first, then
   rides, the way validators order contracts);
3. caps: the charge is cut to what the rider's daily and weekly caps have left;
4. credit: what is left is paid out of the rider's credit of the fare day first.

A tap-on without a tap-off on a network with a maximum fare is charged that fare. The
agent holds it at tap-on, and at tap-off quotes the completed leg from the state it had
before the tap-on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.tariffs.capping import CapSpend, cap_room, fare_day, record_spend
from farebox.protocol.tariffs.credits import Credit, Paid, give, take
from farebox.protocol.tariffs.errors import NoFareError
from farebox.protocol.tariffs.journey import Leg, Rider
from farebox.protocol.tariffs.legs import FareLeg, joins, match, network_of
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.transfers import Fares, add_leg


class ReasonKind(StrEnum):
    LEG_RULE = "leg_rule"
    JOINED = "joined"
    TRANSFER = "transfer"
    MAX_FARE = "max_fare"
    SEASON = "season"
    RIDE = "ride"
    CAP = "cap"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a leg costs what it does: the kind, the rule or id involved, and a sentence."""

    kind: ReasonKind
    ref: str
    detail: str


@dataclass(frozen=True, slots=True)
class LegFare:
    """One leg priced: its product, its pay-as-you-go `fare`, the `amount` charged, why.

    `fare` is negative for a leg that lowers its journey's cost; `amount` is never.
    """

    index: int
    product_id: str | None
    fare: Money
    amount: Money
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class RiderState:
    """All the engine remembers of a rider's earlier legs; start from `RiderState.start`.

    A state belongs to the tariff (id and version) that priced its legs: when a new tariff
    comes into force, rate the rider's legs again under it rather than carry the state over.
    """

    rider: Rider
    tariff: tuple[str, int] | None = None
    legs: int = 0
    fares: Fares = field(default_factory=Fares)
    before_last: Fares | None = None
    last: FareLeg | None = None
    spends: tuple[CapSpend | None, ...] = ()
    rides_used: tuple[tuple[str, int], ...] = ()
    paid: Paid = field(default_factory=Paid)
    credit: Credit | None = None

    @classmethod
    def start(cls, rider: Rider) -> RiderState:
        return cls(rider)


@dataclass(frozen=True, slots=True)
class Quote:
    leg: LegFare
    state: RiderState


@dataclass(frozen=True, slots=True)
class Fare:
    """A rated journey: every leg, the total charged, and the state to continue from."""

    legs: tuple[LegFare, ...]
    total: Money
    state: RiderState


def rate(tariff: Tariff, rider: Rider, legs: Iterable[Leg]) -> Fare:
    """Price a rider's ordered legs (a journey, or a whole fare day) from a fresh state.

    Raises UnknownRiderError for a category or media the tariff does not define, even
    without legs, and NoFareError naming the first leg no rule prices.
    """
    tariff.check_rider(rider.rider_category_id, rider.fare_media_id)
    state = RiderState.start(rider)
    priced = []
    for leg in legs:
        quoted = quote(tariff, state, leg)
        priced.append(quoted.leg)
        state = quoted.state
    total = sum((p.amount.minor for p in priced), 0)
    return Fare(tuple(priced), tariff.amount(total), state)


def quote(tariff: Tariff, state: RiderState, leg: Leg) -> Quote:
    """Price the rider's next leg after the legs `state` has seen.

    Raises UnknownRiderError for a category or media the tariff does not define.
    """
    key = (tariff.id, tariff.version)
    if state.tariff is not None and state.tariff != key:
        raise InvalidValueError(
            f"rider state was built under tariff {state.tariff}, not {key}: rate the legs again"
        )
    rider = state.rider
    category, media = rider.rider_category_id, rider.fare_media_id
    tariff.check_rider(category, media)
    index = state.legs
    reasons: list[Reason] = []
    base, fare_leg = _fare_leg(tariff, state, leg, index)
    fares, transfer = add_leg(tariff, base, fare_leg, category, media)
    rule, number = fare_leg.rule, fare_leg.rule_index
    if rule is None or number is None:
        reasons.append(
            Reason(ReasonKind.MAX_FARE, fare_leg.network_id or "", "no tap-off: maximum fare")
        )
    else:
        if fare_leg.first != index:
            reasons.append(
                Reason(
                    ReasonKind.JOINED,
                    str(fare_leg.first),
                    f"one fare leg with leg {fare_leg.first}",
                )
            )
        reasons.append(
            Reason(
                ReasonKind.LEG_RULE,
                str(number + 1),
                f"leg rule {number + 1}: {rule.fare_product_id}",
            )
        )
    if transfer is not None:
        position, transfer_rule = transfer
        kind = int(transfer_rule.fare_transfer_type)
        reasons.append(
            Reason(
                ReasonKind.TRANSFER, str(position + 1), f"transfer rule {position + 1}: type {kind}"
            )
        )
    fare = fares.total - state.fares.total
    charged = _charge(tariff, state, leg, fare_leg, fare, transfer is not None, reasons)
    priced = LegFare(
        index,
        None if rule is None else rule.fare_product_id,
        tariff.amount(fare),
        tariff.amount(charged.amount),
        tuple(reasons),
    )
    new_state = RiderState(
        rider,
        key,
        index + 1,
        fares,
        base,
        fare_leg,
        charged.spends,
        charged.rides_used,
        charged.paid,
        charged.credit,
    )
    return Quote(priced, new_state)


class _Charged(NamedTuple):
    """What charging one leg gives: the amount, and the parts of the rider state it moves."""

    amount: int
    spends: tuple[CapSpend | None, ...]
    rides_used: tuple[tuple[str, int], ...]
    paid: Paid
    credit: Credit | None


def _charge(
    tariff: Tariff,
    state: RiderState,
    leg: Leg,
    fare_leg: FareLeg,
    fare: int,
    continued: bool,
    reasons: list[Reason],
) -> _Charged:
    """What the rider is charged for a leg whose pay-as-you-go fare is `fare` (see credits)."""
    day = fare_day(tariff, leg.departure)
    paid = state.paid.toward(joined=fare_leg.first != state.legs, continued=continued)
    if fare < 0:
        given = min(-fare, paid.open)
        reasons.append(_credit_reason(tariff, given, -fare))
        credit = give(state.credit, day.toordinal(), given) if given else state.credit
        return _Charged(0, state.spends, state.rides_used, paid.plus(-given), credit)
    network = fare_leg.network_id
    category = state.rider.rider_category_id
    due, rides_used = _passes(tariff, state, leg, network, fare, reasons)
    room = cap_room(tariff, state.spends, category, network, day)
    if room is not None and room.left < due:
        due = room.left
        reasons.append(Reason(ReasonKind.CAP, room.cap.id, f"{room.cap.period.value} cap reached"))
    used, credit = (0, None) if state.credit is None else take(state.credit, day.toordinal(), due)
    if used:
        reasons.append(Reason(ReasonKind.CREDIT, "", f"{tariff.amount(used)} of credit used"))
    spends = record_spend(tariff, state.spends, room, due - used)
    return _Charged(due - used, spends, rides_used, paid.plus(due), credit)


def _credit_reason(tariff: Tariff, given: int, owed: int) -> Reason:
    if given == owed:
        detail = f"{tariff.amount(given)} credit, taken off later fares this fare day"
    elif given:
        detail = (
            f"{tariff.amount(given)} credit (the journey fell by {tariff.amount(owed)}, but the"
            " sub-journey was charged only that), taken off later fares this fare day"
        )
    else:
        detail = "no credit: nothing was charged for this sub-journey"
    return Reason(ReasonKind.CREDIT, "", detail)


def _fare_leg(tariff: Tariff, state: RiderState, leg: Leg, index: int) -> tuple[Fares, FareLeg]:
    """The fare leg `leg` belongs to, and the fares it is added to (before a joined leg)."""
    rider = state.rider
    category, media = rider.rider_category_id, rider.fare_media_id
    last = state.last
    base = state.fares
    network = network_of(tariff, (leg,)) if tariff.max_fare_index else None
    if last is not None and state.before_last is not None and joins(tariff, last.legs[-1], leg):
        # the spec prices the joined legs as one effective leg, or not at all
        base = state.before_last
        priced = match(tariff, last.first, (*last.legs, leg), category, media)
    elif leg.to_stop_id is None and network in tariff.max_fare_index:
        amount = tariff.price(tariff.max_fare_index[network], category, media)
        priced = None if amount is None else FareLeg(index, (leg,), network, amount, None, None)
    else:
        priced = match(tariff, index, (leg,), category, media)
    if priced is None:
        raise NoFareError(
            index,
            f"route {leg.route_id!r} from stop {leg.from_stop_id!r} at {leg.departure.isoformat()}",
        )
    return base, priced


def _passes(
    tariff: Tariff,
    state: RiderState,
    leg: Leg,
    network: str | None,
    fare: int,
    reasons: list[Reason],
) -> tuple[int, tuple[tuple[str, int], ...]]:
    """What a leg of `fare` (never negative here) costs after passes, and the rides used.

    A holding of a multi-ride pass carries the rides it had left when the state started
    (None: the pass's full count); the state counts the rides used since.
    """
    if fare == 0 or not state.rider.holdings:  # a free leg (a free transfer) uses no ride
        return fare, state.rides_used
    valid = [
        (h, tariff.pass_index[h.pass_id])
        for h in state.rider.holdings
        if h.pass_id in tariff.pass_index
        and tariff.pass_index[h.pass_id].covers(network)
        and h.valid_at(leg.departure)
    ]
    for holding, held in valid:
        if held.rides is None:
            reasons.append(Reason(ReasonKind.SEASON, holding.pass_id, "period pass"))
            return 0, state.rides_used
    used = dict(state.rides_used)
    for holding, held in valid:
        start = held.rides if holding.rides is None else holding.rides
        left = (start or 0) - used.get(holding.pass_id, 0)
        if left > 0:
            used[holding.pass_id] = used.get(holding.pass_id, 0) + 1
            reasons.append(
                Reason(ReasonKind.RIDE, holding.pass_id, f"one ride used, {left - 1} left")
            )
            return 0, tuple(sorted(used.items()))
    return fare, state.rides_used
