"""GTFS-Fares v2 import, tested against the spec's semantics on the `metro` fixture feed.

The feed (feeds/metro) has a local bus, a subway with peak and weekend fares, a zoned
regional rail line, an express bus and a free downtown area, with one transfer rule of
each fare_transfer_type and duration_limit_type. Times are Toronto local; 2 March 2026
is a Monday, 7 March a Saturday, 1 July (Canada Day) a Wednesday run as a weekend.
"""

from __future__ import annotations

import pytest

from farebox.protocol.tariffs.engine import ReasonKind, rate
from farebox.protocol.tariffs.errors import InvalidTariffError, NoFareError
from farebox.protocol.tariffs.journey import Leg, Rider
from farebox.protocol.tariffs.tariff import Tariff
from tests.protocol.tariffs.helpers import feed_files, metro, toronto

TARIFF = metro()
TARIFF_RULES = feed_files("metro")["fare_leg_rules.txt"]


def cents(legs: list[Leg], rider: Rider | None = None, tariff: Tariff = TARIFF) -> list[int]:
    fare = rate(tariff, rider or Rider(), legs)
    assert fare.total.currency == "CAD"
    return [leg.amount.minor for leg in fare.legs]


def ride(
    route: str,
    frm: str,
    on: str,
    to: str | None = None,
    off: str | None = None,
    day: int = 2,
    month: int = 3,
) -> Leg:
    return Leg(
        route, frm, toronto(month, day, on), to, None if off is None else toronto(month, day, off)
    )


def test_feed_header() -> None:
    assert (TARIFF.currency, TARIFF.timezone) == ("CAD", "America/Toronto")
    assert TARIFF.priority_semantics  # fare_leg_rules.txt has a rule_priority column
    assert TARIFF.default_category == "adult"


@pytest.mark.parametrize(
    ("category", "media", "expected"),
    [
        ("adult", "card", 300),
        ("adult", "cash", 350),
        (None, "cash", 350),  # no category: the default (adult)
        ("adult", None, 300),  # unknown media: the cheapest adult price
        ("senior", "cash", 200),  # the senior price has no media: any media
    ],
)
def test_rider_category_and_fare_media(
    category: str | None, media: str | None, expected: int
) -> None:
    assert cents([ride("bus1", "s2", "10:00")], Rider(category, media)) == [expected]


@pytest.mark.parametrize(
    ("month", "day", "clock", "expected"),
    [
        (3, 2, "10:00", 325),  # Monday off-peak
        (3, 2, "08:00", 400),  # Monday peak
        (3, 2, "09:00", 325),  # a timeframe's end is excluded
        (3, 2, "16:00", 400),  # second interval of the peak group
        (3, 7, "08:00", 250),  # Saturday: weekend timeframe
        (7, 1, "08:00", 250),  # Canada Day: calendar_dates moves it to the weekend service
    ],
)
def test_timeframes_with_service_ids(month: int, day: int, clock: str, expected: int) -> None:
    assert cents([ride("sub1", "king-1", clock, day=day, month=month)]) == [expected]


def test_higher_rule_priority_wins() -> None:
    # the downtown rule (priority 2, any network) beats the bus rule (priority 0)
    assert cents([ride("bus1", "s1", "10:00")]) == [0]
    assert cents([ride("exp", "s1", "10:00")]) == [0]
    assert cents([ride("bus1", "s2", "10:00")]) == [300]


@pytest.mark.parametrize(
    ("frm", "to", "expected"),
    [
        ("union-r", "union-r", 350),  # the platform is in zone1 through its station
        ("union-r", "r-suburb", 500),
        ("r-suburb", "union-r", 500),
        ("r-far", "r-suburb", 650),  # no zone rule: the empty-field rule at priority 0
        ("union-r", None, 650),  # no tap-off: only the rule without to_area matches
    ],
)
def test_zone_fares_with_priority_semantics(frm: str, to: str | None, expected: int) -> None:
    assert cents([ride("rail", frm, "10:00", to, None if to is None else "10:40")]) == [expected]


EXCLUSIVE_RULES = """leg_group_id,network_id,from_area_id,to_area_id,fare_product_id{priority}
bus,bus,,,bus_fare{zero}
other,,,,express_fare{zero}
rail,rail,zone1,zone2,rail_2zone{zero}
rail,rail,zone1,,rail_1zone{zero}
rail,rail,,,rail_3zone{zero}
"""


def test_empty_fields_without_rule_priority_mean_all_values_not_listed() -> None:
    tariff = metro(
        fare_leg_rules=EXCLUSIVE_RULES.format(priority="", zero=""), fare_transfer_rules=None
    )
    assert not tariff.priority_semantics
    assert cents([ride("rail", "union-r", "10:00", "r-suburb", "10:30")], tariff=tariff) == [500]
    assert cents([ride("rail", "union-r", "10:00", "r-far", "10:30")], tariff=tariff) == [350]
    assert cents([ride("rail", "r-far", "10:00", "r-far", "10:30")], tariff=tariff) == [650]
    # subway is listed by no rule: the empty network rule takes it; bus is listed: it does not
    assert cents([ride("sub1", "king-1", "10:00")], tariff=tariff) == [500]
    assert cents([ride("bus1", "s2", "10:00")], tariff=tariff) == [300]
    # zone3 to zone2: zone2 is listed as a to_area, so no empty to_area rule matches
    with pytest.raises(NoFareError, match="leg 0"):
        rate(tariff, Rider(), [ride("rail", "r-far", "10:00", "r-suburb", "10:30")])


def test_the_same_rules_with_rule_priority_mean_any_value() -> None:
    tariff = metro(
        fare_leg_rules=EXCLUSIVE_RULES.format(priority=",rule_priority", zero=",0"),
        fare_transfer_rules=None,
    )
    # zone3 to zone2 now matches the rail rule without areas (6.50) and the rule without a
    # network (5.00): alternatives at one priority, so the cheaper is charged
    assert cents([ride("rail", "r-far", "10:00", "r-suburb", "10:30")], tariff=tariff) == [500]
    # four rules match zone1 to zone2 at priority 0: alternatives, the cheapest is charged
    assert cents([ride("rail", "union-r", "10:00", "r-suburb", "10:30")], tariff=tariff) == [350]


def test_a_platform_given_its_own_area_leaves_its_station_area() -> None:
    areas = "area_id,stop_id\nzone1,union\nzone2,union-r\nzone2,r-suburb\nzone3,r-far\n"
    tariff = metro(stop_areas=areas)
    # union-r is now in zone2 only: zone2 to zone2 has no zone rule
    assert cents([ride("rail", "union-r", "10:00", "r-suburb", "10:30")], tariff=tariff) == [650]


def test_network_id_in_routes_txt() -> None:
    routes = (
        "route_id,agency_id,route_short_name,route_type,network_id\n"
        "bus1,a1,1,3,bus\nbus2,a1,2,3,bus\nsub1,a1,L1,1,subway\nsub2,a1,L2,1,subway\n"
        "exp,a1,X,3,express\nrail,a1,R,2,rail\n"
    )
    tariff = metro(routes=routes, networks=None, route_networks=None)
    assert cents([ride("sub1", "king-1", "10:00")], tariff=tariff) == [325]


def test_join_rule_makes_one_effective_leg() -> None:
    # line 1 to line 2 changing at Union: one subway fare, timed from the first leg
    legs = [
        ride("sub1", "king-1", "06:50", "union-1", "06:58"),
        ride("sub2", "union-2", "07:05", "s3", "07:20"),
    ]
    fare = rate(TARIFF, Rider(), legs)
    assert [leg.amount.minor for leg in fare.legs] == [325, 0]
    assert fare.legs[1].reasons[0].kind is ReasonKind.JOINED
    # leaving the station in between breaks the join: the second leg is a peak fare
    apart = [
        ride("sub1", "king-1", "06:50", "union-1", "06:58"),
        ride("sub2", "king-1", "07:05", "s3", "07:20"),
    ]
    assert cents(apart) == [325, 400]


def test_transfer_type_0_free_within_count_and_departure_to_departure_limit() -> None:
    # bus to bus: transfer_count 1, 90 minutes between departures, A + AB with no product
    assert cents([ride("bus1", "s2", "10:00"), ride("bus2", "s3", "11:30")]) == [300, 0]
    assert cents([ride("bus1", "s2", "10:00"), ride("bus2", "s3", "11:31")]) == [300, 300]
    three = [ride("bus1", "s2", "10:00"), ride("bus2", "s3", "10:20"), ride("bus1", "s2", "10:40")]
    assert cents(three) == [300, 0, 300]  # the second transfer exceeds transfer_count 1


def test_transfer_type_0_with_product_and_departure_to_arrival_limit() -> None:
    # bus to subway: A + AB, AB = 1.00; two hours from the bus departure to subway arrival
    legs = [ride("bus1", "s2", "10:00"), ride("sub1", "king-1", "11:00", "union-1", "12:00")]
    assert cents(legs) == [300, 100]
    late = [ride("bus1", "s2", "10:00"), ride("sub1", "king-1", "11:00", "union-1", "12:01")]
    assert cents(late) == [300, 325]


def test_transfer_type_2_charges_the_transfer_product_only() -> None:
    # subway then bus: AB = 4.00 replaces A = 3.25, so the bus leg adds 0.75
    assert cents([ride("sub1", "king-1", "10:00"), ride("bus1", "s2", "10:30")]) == [325, 75]


def test_transfer_type_1_with_a_negative_product_and_arrival_to_departure_limit() -> None:
    # express then bus: A + AB + B = 5.00 - 1.00 + 3.00; 30 minutes from arrival to departure
    legs = [ride("exp", "s2", "08:00", "s3", "08:40"), ride("bus1", "s3", "09:10")]
    assert cents(legs) == [500, 200]
    late = [ride("exp", "s2", "08:00", "s3", "08:40"), ride("bus1", "s3", "09:11")]
    assert cents(late) == [500, 300]


def test_unlimited_transfer_count_measured_from_the_first_leg_arrival_to_arrival() -> None:
    legs = [
        ride("rail", "union-r", "08:00", "r-suburb", "08:30"),
        ride("rail", "r-suburb", "08:35", "r-far", "09:00"),
        ride("rail", "r-far", "09:10", "r-suburb", "09:30"),
    ]
    assert cents(legs) == [500, 0, 0]  # 09:30 is 60 minutes after the first arrival
    legs[2] = ride("rail", "r-far", "09:10", "r-suburb", "09:31")
    assert cents(legs) == [500, 0, 650]


def test_the_smallest_sufficient_transfer_count_is_chosen() -> None:
    rules = (
        "from_leg_group_id,to_leg_group_id,transfer_count,duration_limit,duration_limit_type,"
        "fare_transfer_type,fare_product_id\n"
        "bus,bus,2,5400,1,0,second_transfer\n"
        "bus,bus,1,5400,1,0,\n"
    )
    tariff = metro(fare_transfer_rules=rules)
    legs = [ride("bus1", "s2", f"10:{minute:02d}") for minute in (0, 10, 20, 30)]
    assert cents(legs, tariff=tariff) == [300, 0, 50, 300]


def test_empty_leg_group_means_every_group_not_listed() -> None:
    rules = (
        "from_leg_group_id,to_leg_group_id,fare_transfer_type,fare_product_id\n"
        ",bus,0,\n"
        "subway,bus,0,bus_to_subway\n"
    )
    tariff = metro(fare_transfer_rules=rules)
    # express is listed by no rule as from_leg_group: the empty one applies (free)
    assert cents([ride("exp", "s2", "08:00"), ride("bus1", "s3", "08:30")], tariff=tariff) == [
        500,
        0,
    ]
    # subway is listed: only its own rule applies (1.00)
    assert cents([ride("sub1", "king-1", "10:00"), ride("bus1", "s3", "10:30")], tariff=tariff) == [
        325,
        100,
    ]


def test_a_bad_feed_is_refused_with_every_problem_listed() -> None:
    rules = (
        "leg_group_id,network_id,fare_product_id,rule_priority\n"
        "bus,bus,no_such_product,0\n"
        "bus,tram,bus_fare,0\n"
    )
    products = "fare_product_id,amount,currency\nbus_fare,3.005,CAD\nsubway_fare,x,CAD\n"
    transfers = "from_leg_group_id,to_leg_group_id,transfer_count,fare_transfer_type\nbus,,1,0\n"
    frames = (
        "timeframe_group_id,start_time,end_time,service_id\n"
        "peak,07:00:00,25:00:00,weekdays\nearly,06:00:00,,weekdays\nnever,,,holidays\n"
    )
    with pytest.raises(InvalidTariffError) as caught:
        metro(
            agency=None,
            fare_leg_rules=rules,
            fare_products=products,
            fare_transfer_rules=transfers,
            timeframes=frames,
        )
    text = "\n".join(caught.value.problems)
    for expected in (
        "agency.txt",
        "3.005",
        "'x'",
        "transfer_count",
        "no_such_product",
        "unknown network 'tram'",
        "timeframes.txt:2: end_time after 24:00:00",
        "timeframes.txt:3: start_time and end_time go together",
        "timeframes.txt:4: service_id 'holidays' runs on no date",
    ):
        assert expected in text


def test_timeframes_follow_local_time_across_daylight_saving() -> None:
    # clocks went forward on Sunday 8 March 2026: 08:00 on Monday the 9th is still peak
    assert cents([ride("sub1", "king-1", "08:00", day=9)]) == [400]
    assert cents([ride("sub1", "king-1", "09:00", day=9)]) == [325]


def test_join_rule_with_named_transfer_stops() -> None:
    joins = "from_network_id,to_network_id,from_stop_id,to_stop_id\nrail,subway,union-r,union\n"
    tariff = metro(fare_leg_join_rules=joins)
    legs = [
        ride("rail", "r-suburb", "10:00", "union-r", "10:30"),
        ride("sub1", "union-1", "10:40", "king-1", "10:45"),
    ]
    # one effective leg across two networks has no network: only rules without one match,
    # and the downtown rule needs a departure from s1, so nothing prices it
    with pytest.raises(NoFareError, match="leg 1"):
        rate(tariff, Rider(), legs)
    rules = TARIFF_RULES + "joint,,zone2,,,,rail_1zone,0\n"
    tariff = metro(fare_leg_join_rules=joins, fare_leg_rules=rules)
    # the rail leg alone cost 5.00; joined with the subway leg the effective leg costs 3.50:
    # the second leg's fare is -1.50, charged nothing, and 1.50 is credit for later that day
    fare = rate(tariff, Rider(), legs)
    assert [(leg.fare.minor, leg.amount.minor) for leg in fare.legs] == [(500, 500), (-150, 0)]
    assert fare.legs[1].reasons[-1].kind is ReasonKind.CREDIT
    later = ride("bus1", "s2", "15:00")
    assert cents([*legs, later], tariff=tariff) == [500, 0, 300 - 150]
    # changing anywhere else is two legs
    apart = [
        ride("rail", "r-suburb", "10:00", "union-r", "10:30"),
        ride("sub1", "king-1", "10:40", "union-1", "10:45"),
    ]
    assert cents(apart, tariff=tariff) == [500, 325]


def test_to_timeframe_uses_the_arrival_time() -> None:
    rules = TARIFF_RULES + "late,rail,,,,peak,rail_1zone,3\n"
    tariff = metro(fare_leg_rules=rules, fare_transfer_rules=None)
    assert cents([ride("rail", "r-far", "06:00", "r-suburb", "07:10")], tariff=tariff) == [350]
    assert cents([ride("rail", "r-far", "06:00", "r-suburb", "06:59")], tariff=tariff) == [650]


def test_effective_from_comes_from_feed_info() -> None:
    info = "feed_publisher_name,feed_publisher_url,feed_lang,feed_start_date\nL,https://l.example,en,20260301\n"
    tariff = metro(feed_info=info)
    assert tariff.effective_from.isoformat() == "2026-03-01T00:00:00-05:00"


def test_a_product_without_a_default_category_price_is_refused() -> None:
    products = "fare_product_id,rider_category_id,amount,currency\nbus_fare,senior,2.00,CAD\n"
    rules = "leg_group_id,network_id,fare_product_id\nbus,bus,bus_fare\n"
    with pytest.raises(InvalidTariffError, match="no price for the default rider category"):
        metro(fare_products=products, fare_leg_rules=rules, fare_transfer_rules=None)
