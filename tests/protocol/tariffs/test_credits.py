"""Transfer credits under passes and caps: no leg is charged less than nothing.

A type 2 transfer product or a joined leg cheaper than the first leg makes a leg's
pay-as-you-go fare negative. The rider gets at most what the open sub-journey was charged
back, as credit off their next charges that fare day; caps count what was charged.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from farebox.protocol.tariffs.capping import fare_day
from farebox.protocol.tariffs.engine import ReasonKind, RiderState, quote, rate
from farebox.protocol.tariffs.journey import Holding, Leg, Rider
from farebox.protocol.tariffs.model import CapPeriod
from farebox.protocol.tariffs.native import load_tariff
from farebox.protocol.tariffs.tariff import Tariff
from tests.protocol.tariffs.helpers import almaty

HEADER = """
[tariff]
id = "credits"
version = 1
effective_from = 2026-01-01T03:00:00+05:00
currency = "KZT"
timezone = "Asia/Almaty"
rounding_increment = "1"
"""

# The review's case: metro 250, bus 200, metro then bus on an `ab` product of 200, and a
# daily cap of 600.
SMALL = (
    HEADER
    + """
[[rider_categories]]
id = "adult"
default = true

[[networks]]
id = "bus"
routes = ["B1"]

[[networks]]
id = "metro"
routes = ["M1"]

[[products]]
id = "bus"
amount = "200"

[[products]]
id = "metro"
amount = "250"

[[products]]
id = "metro-bus"
amount = "200"

[[leg_rules]]
leg_group = "bus"
network = "bus"
product = "bus"

[[leg_rules]]
leg_group = "metro"
network = "metro"
product = "metro"

[[transfer_rules]]
from_leg_group = "metro"
to_leg_group = "bus"
duration_limit = 3600
duration_limit_type = "departure_to_departure"
fare_transfer_type = "ab"
product = "metro-bus"

[[caps]]
id = "day"
period = "day"
amount = "600"

[[passes]]
id = "metro-month"
name = "30 days of metro"
price = "5000"
days = 30
networks = ["metro"]
"""
)

# Every source of a negative fare with every pass and cap: `ab` transfers cheaper than
# the first leg, a negative transfer product, a metro leg joined to the next one at the
# same stop (a two-zone ride then back into the first zone is one one-zone ride), period
# and multi-ride passes, daily, weekly and network caps.
RICH = (
    HEADER
    + """
[[rider_categories]]
id = "adult"
default = true

[[rider_categories]]
id = "student"
discount_percent = 50

[[fare_media]]
id = "card"
type = "transit_card"

[[networks]]
id = "bus"
routes = ["B1", "B2"]

[[networks]]
id = "metro"
routes = ["M1", "M2"]

[[areas]]
id = "zone-a"
stops = ["a1", "a2"]

[[areas]]
id = "zone-b"
stops = ["b1", "b2"]

[[products]]
id = "bus"
amount = "200"

[[products]]
id = "metro-1"
amount = "250"

[[products]]
id = "metro-2"
amount = "400"

[[products]]
id = "metro-bus"
amount = "150"

[[products]]
id = "bus-bus"
amount = "-80"

[[products]]
id = "bus-metro"
amount = "100"

[[leg_rules]]
leg_group = "bus"
network = "bus"
product = "bus"

[[leg_rules]]
leg_group = "metro"
network = "metro"
from_area = "zone-a"
to_area = "zone-a"
product = "metro-1"

[[leg_rules]]
leg_group = "metro"
network = "metro"
from_area = "zone-b"
to_area = "zone-b"
product = "metro-1"

[[leg_rules]]
leg_group = "metro"
network = "metro"
from_area = "zone-a"
to_area = "zone-b"
product = "metro-2"

[[leg_rules]]
leg_group = "metro"
network = "metro"
from_area = "zone-b"
to_area = "zone-a"
product = "metro-2"

[[join_rules]]
from_network = "metro"
to_network = "metro"

[[transfer_rules]]
from_leg_group = "metro"
to_leg_group = "bus"
duration_limit = 3600
duration_limit_type = "departure_to_departure"
fare_transfer_type = "ab"
product = "metro-bus"

[[transfer_rules]]
from_leg_group = "bus"
to_leg_group = "bus"
transfer_count = 2
duration_limit = 2400
duration_limit_type = "departure_to_departure"
fare_transfer_type = "a_plus_ab_plus_b"
product = "bus-bus"

[[transfer_rules]]
from_leg_group = "bus"
to_leg_group = "metro"
duration_limit = 3600
duration_limit_type = "arrival_to_departure"
fare_transfer_type = "ab"
product = "bus-metro"

[[caps]]
id = "day-adult"
period = "day"
amount = "600"
rider_categories = ["adult"]

[[caps]]
id = "week-adult"
period = "week"
amount = "2000"
rider_categories = ["adult"]

[[caps]]
id = "day-student"
period = "day"
amount = "300"
rider_categories = ["student"]

[[caps]]
id = "day-metro"
period = "day"
amount = "500"
networks = ["metro"]

[[passes]]
id = "bus-month"
name = "30 days of buses"
price = "5000"
days = 30
networks = ["bus"]

[[passes]]
id = "three-rides"
name = "3 rides"
price = "600"
rides = 3

[[max_fares]]
network = "metro"
product = "metro-2"
"""
)

SMALL_TARIFF = load_tariff(SMALL)
RICH_TARIFF = load_tariff(RICH)
UNCAPPED = load_tariff(RICH[: RICH.index("[[caps]]")] + RICH[RICH.index("[[passes]]") :])
MONTH = (almaty(1, "00:00"), almaty(31, "00:00"))


def bus(clock: str, day: int = 2) -> Leg:
    return Leg("B1", "stop", almaty(day, clock))


def metro(clock: str, day: int = 2) -> Leg:
    return Leg("M1", "station", almaty(day, clock))


def tenge(tariff: Tariff, rider: Rider, legs: list[Leg]) -> tuple[list[int], int]:
    fare = rate(tariff, rider, legs)
    return [leg.amount.minor // 100 for leg in fare.legs], fare.total.minor // 100


def test_a_metro_pass_holder_gets_no_credit_for_a_free_metro_ride() -> None:
    rider = Rider(holdings=(Holding("metro-month", *MONTH),))
    # was [0, -50]: the rider was paid 50 for a ride the pass had made free
    assert tenge(SMALL_TARIFF, rider, [metro("08:00"), bus("08:20")]) == ([0, 0], 0)
    reasons = rate(SMALL_TARIFF, rider, [metro("08:00"), bus("08:20")]).legs[1].reasons
    assert (reasons[-1].kind, reasons[-1].detail) == (
        ReasonKind.CREDIT,
        "no credit: nothing was charged for this sub-journey",
    )


def test_a_credit_after_the_cap_gives_no_room_back() -> None:
    day = [bus("07:00"), bus("09:00"), bus("11:00"), metro("13:00"), bus("13:20")]
    # pay as you go is 800 and the cap 600; this was 550: the credit undercut the cap
    assert tenge(SMALL_TARIFF, Rider(), day) == ([200, 200, 200, 0, 0], 600)


def test_a_credit_is_taken_off_the_next_charges_of_the_fare_day() -> None:
    journey = [metro("08:00"), bus("08:20")]
    fare = rate(SMALL_TARIFF, Rider(), journey)
    assert [(leg.fare.minor, leg.amount.minor) for leg in fare.legs] == [(25000, 25000), (-5000, 0)]
    assert (
        fare.legs[1].reasons[-1].detail == "50.00 KZT credit, taken off later fares this fare day"
    )
    later = [*journey, bus("12:00"), bus("14:00")]
    assert tenge(SMALL_TARIFF, Rider(), later) == ([250, 0, 150, 200], 600)
    used = rate(SMALL_TARIFF, Rider(), later).legs[2].reasons[-1]
    assert (used.kind, used.detail) == (ReasonKind.CREDIT, "50.00 KZT of credit used")
    # the credit counts as charged toward the cap: the day still comes to the cap of 600
    assert tenge(SMALL_TARIFF, Rider(), [*later, bus("16:00")])[1] == 600
    # and it lapses with the fare day (which starts at 03:00)
    assert tenge(SMALL_TARIFF, Rider(), [*journey, bus("03:30", day=3)]) == ([250, 0, 200], 450)


def test_a_credit_is_at_most_what_the_sub_journey_was_charged() -> None:
    two_zones = Leg("M1", "a1", almaty(2, "10:00"), "b1", almaty(2, "10:20"))
    day = [bus("07:00"), bus("08:00"), two_zones, bus("10:30")]
    fare = rate(RICH_TARIFF, Rider(), day)
    # the cap leaves 200 of the 400 metro ride, so the metro-bus product (150) gives back
    # 200, not the 250 the journey fell by
    assert [(leg.fare.minor, leg.amount.minor) for leg in fare.legs] == [
        (20000, 20000),
        (20000, 20000),
        (40000, 20000),
        (-25000, 0),
    ]
    assert fare.legs[3].reasons[-1].detail == (
        "200.00 KZT credit (the journey fell by 250.00 KZT, but the sub-journey was charged"
        " only that), taken off later fares this fare day"
    )


def test_a_joined_leg_cheaper_than_its_first_part_is_credit() -> None:
    two_zones = Leg("M1", "a1", almaty(2, "08:00"), "b1", almaty(2, "08:20"))
    back = Leg("M2", "b1", almaty(2, "08:25"), "a2", almaty(2, "08:45"))
    fare = rate(RICH_TARIFF, Rider(), [two_zones, back])
    assert [(leg.fare.minor, leg.amount.minor) for leg in fare.legs] == [
        (40000, 40000),
        (-15000, 0),
    ]
    assert fare.legs[1].reasons[0].kind is ReasonKind.JOINED
    # the 150 back pays for most of the next bus
    assert tenge(RICH_TARIFF, Rider(), [two_zones, back, bus("10:00")]) == ([400, 0, 50], 450)


def test_the_agent_s_one_tap_quote_is_never_negative() -> None:
    state = rate(SMALL_TARIFF, Rider(), [metro("08:00")]).state
    assert quote(SMALL_TARIFF, state, bus("08:20")).leg.amount.minor == 0


@st.composite
def days(draw: st.DrawFn) -> list[Leg]:
    """Up to ten legs over a week: buses, and metro rides that may end where the next starts."""
    moment = almaty(2, "05:00")
    legs: list[Leg] = []
    stops = ["a1", "a2", "b1", "b2"]
    for _ in range(draw(st.integers(1, 10))):
        moment += timedelta(minutes=draw(st.sampled_from([0, 5, 15, 30, 50, 120, 600, 1440])))
        if draw(st.booleans()):
            legs.append(Leg(draw(st.sampled_from(["B1", "B2"])), "stop", moment))
            continue
        last = legs[-1] if legs else None
        to = draw(st.none() | st.sampled_from(stops))
        off = None if to is None else moment + timedelta(minutes=draw(st.integers(5, 40)))
        if to is None:
            start = "gate"  # a tap-on without tap-off joins nothing: the maximum fare
        elif last is not None and last.to_stop_id is not None and draw(st.booleans()):
            start = last.to_stop_id  # joined to the ride before
        else:
            start = draw(st.sampled_from(stops))
        legs.append(Leg(draw(st.sampled_from(["M1", "M2"])), start, moment, to, off))
        moment = off or moment
    return legs


holdings = st.lists(
    st.builds(
        Holding,
        st.sampled_from(["bus-month", "three-rides"]),
        st.just(almaty(1, "00:00")),
        st.sampled_from([almaty(4, "00:00"), almaty(31, "00:00")]),
        st.none() | st.integers(0, 3),
    ),
    max_size=2,
).map(tuple)
riders = st.builds(
    Rider, st.sampled_from([None, "adult", "student"]), st.sampled_from([None, "card"]), holdings
)


def _periods(day: date, period: CapPeriod) -> tuple[int, int]:
    if period is CapPeriod.DAY:
        return (day.toordinal(), 0)
    year, week, _ = day.isocalendar()
    return (year, week)


@given(riders, days())
def test_no_leg_is_negative_caps_hold_and_nobody_pays_more_than_pay_as_you_go(
    rider: Rider, legs: list[Leg]
) -> None:
    fare = rate(RICH_TARIFF, rider, legs)
    assert all(priced.amount.minor >= 0 for priced in fare.legs)
    category = rider.rider_category_id or "adult"
    spent: dict[tuple[str, tuple[int, int]], int] = defaultdict(int)
    for leg, priced in zip(legs, fare.legs, strict=True):
        network = RICH_TARIFF.route_network[leg.route_id]
        day = fare_day(RICH_TARIFF, leg.departure)
        for cap in RICH_TARIFF.caps:
            if cap.applies(category, network):
                spent[(cap.id, _periods(day, cap.period))] += priced.amount.minor
    limits = {cap.id: cap.amount.minor for cap in RICH_TARIFF.caps}
    assert all(0 <= total <= limits[cap] for (cap, _), total in spent.items())
    # pay as you go: the same rider with no pass and no cap, which is itself between the
    # journey's GTFS total (every credit paid out) and the sum of its positive fares
    plain = rate(UNCAPPED, Rider(rider.rider_category_id, rider.fare_media_id), legs)
    assert 0 <= fare.total.minor <= plain.total.minor
    fares = [priced.fare.minor for priced in plain.legs]
    assert sum(fares) <= plain.total.minor <= sum(max(f, 0) for f in fares)
    # and the agent, quoting one tap at a time, agrees with the day rated whole
    state = RiderState.start(rider)
    for leg, priced in zip(legs, fare.legs, strict=True):
        quoted = quote(RICH_TARIFF, state, leg)
        assert quoted.leg == priced
        state = quoted.state
