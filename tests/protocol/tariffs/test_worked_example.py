"""The worked example of docs/tariffs.md, read as a fare table (amounts in tenge)."""

from __future__ import annotations

import pytest

from farebox.protocol.tariffs.engine import ReasonKind, RiderState, quote, rate
from farebox.protocol.tariffs.errors import NoFareError, UnknownRiderError
from farebox.protocol.tariffs.journey import Holding, Leg, Rider
from tests.protocol.tariffs.helpers import almaty, example

TARIFF = example()


def tenge(legs: list[Leg], rider: Rider | None = None) -> list[int]:
    fare = rate(TARIFF, rider or Rider(), legs)
    assert fare.total.minor == sum(leg.amount.minor for leg in fare.legs)
    return [leg.amount.minor // 100 for leg in fare.legs]


def bus(day: int, clock: str, route: str = "12") -> Leg:
    return Leg(route, "stop", almaty(day, clock))


def metro(day: int, clock: str) -> Leg:
    return Leg("M1", "station", almaty(day, clock))


def suburban(day: int, on: str, off: str | None, frm: str, to: str | None) -> Leg:
    return Leg("S1", frm, almaty(day, on), to, None if off is None else almaty(day, off))


@pytest.mark.parametrize(
    ("category", "bus_fare", "metro_fare"),
    [
        ("adult", 200, 250),
        (None, 200, 250),  # no category: the default, adult
        ("student", 100, 125),
        ("school", 100, 125),
        ("pensioner", 0, 0),
        ("free", 0, 0),
    ],
)
def test_single_rides_by_category(category: str | None, bus_fare: int, metro_fare: int) -> None:
    rider = Rider(category)
    assert tenge([bus(2, "08:00")], rider) == [bus_fare]
    assert tenge([metro(2, "08:00")], rider) == [metro_fare]


def test_one_free_transfer_within_forty_minutes() -> None:
    #          bus 08:00  metro 08:30 (free)  bus 08:35 (second transfer: pays)
    assert tenge([bus(2, "08:00"), metro(2, "08:30"), bus(2, "08:35")]) == [200, 0, 200]
    #          bus 08:00  bus 08:40 (exactly 40 minutes: still free)
    assert tenge([bus(2, "08:00"), bus(2, "08:40", "32")]) == [200, 0]
    #          bus 08:00  bus 08:41 (too late)
    assert tenge([bus(2, "08:00"), bus(2, "08:41", "32")]) == [200, 200]


def test_daily_cap_adult_600_student_300() -> None:
    day = [bus(2, "07:00"), bus(2, "09:00"), metro(2, "12:00"), bus(2, "15:00"), bus(2, "18:00")]
    assert tenge(day) == [200, 200, 200, 0, 0]  # the metro ride is cut from 250 to 200
    assert tenge(day, Rider("student")) == [100, 100, 100, 0, 0]
    capped = rate(TARIFF, Rider(), day).legs[2]
    assert [r.kind for r in capped.reasons][-1] is ReasonKind.CAP
    assert (capped.fare.minor, capped.amount.minor) == (25000, 20000)


def test_the_monday_of_the_documentation() -> None:
    day = [bus(2, "07:00"), metro(2, "07:30"), bus(2, "09:00", "92"), metro(2, "12:00"),
           bus(2, "18:00", "32")]  # fmt: skip
    assert tenge(day) == [200, 0, 200, 200, 0]
    assert tenge(day, Rider("student")) == [100, 0, 100, 100, 0]
    assert tenge(day, Rider("pensioner")) == [0, 0, 0, 0, 0]


def test_fare_day_starts_at_three_in_the_morning() -> None:
    late = [bus(2, "20:00"), bus(2, "21:00"), bus(2, "22:00"), bus(3, "02:30"), bus(3, "03:30")]
    # 02:30 on the 3rd still belongs to the fare day of the 2nd, which is capped at 600
    assert tenge(late) == [200, 200, 200, 0, 200]


def test_suburban_zones_and_missing_tap_off() -> None:
    assert tenge([suburban(2, "09:00", "09:20", "S1-sayakhat", "S1-almaty-2")]) == [200]
    assert tenge([suburban(2, "09:00", "09:40", "S1-sayakhat", "S1-airport")]) == [400]
    held = rate(TARIFF, Rider(), [suburban(2, "09:00", None, "S1-sayakhat", None)]).legs[0]
    assert held.amount.minor == 40000
    assert held.reasons[0].kind is ReasonKind.MAX_FARE
    # the maximum fare is a product, so it is the rider's own price for it
    no_tap_off = [suburban(2, "09:00", None, "S1-sayakhat", None)]
    assert tenge(no_tap_off, Rider("student")) == [200]
    assert tenge(no_tap_off, Rider("pensioner")) == [0]


def test_tap_off_replaces_the_maximum_fare_held_at_tap_on() -> None:
    before = RiderState.start(Rider())
    on = quote(TARIFF, before, suburban(2, "09:00", None, "S1-sayakhat", None))
    off = quote(TARIFF, before, suburban(2, "09:00", "09:20", "S1-sayakhat", "S1-almaty-2"))
    assert (on.leg.amount.minor, off.leg.amount.minor) == (40000, 20000)


def test_month_pass_covers_bus_and_metro_but_not_suburban() -> None:
    month = Holding("month-city", almaty(1, "00:00"), almaty(31, "00:00"))
    rider = Rider(holdings=(month,))
    legs = [bus(2, "08:00"), suburban(2, "10:00", "10:20", "S1-sayakhat", "S1-almaty-2")]
    assert tenge(legs, rider) == [0, 200]
    reasons = rate(TARIFF, rider, legs).legs[0].reasons
    assert (reasons[-1].kind, reasons[-1].ref) == (ReasonKind.SEASON, "month-city")
    expired = Rider(holdings=(Holding("month-city", almaty(1, "00:00"), almaty(2, "00:00")),))
    assert tenge([bus(2, "08:00")], expired) == [200]


def test_ten_rides_are_used_one_per_paid_leg() -> None:
    rides = Holding("ten-rides", almaty(1, "00:00"), almaty(31, "00:00"), rides=2)
    legs = [bus(2, "08:00"), metro(2, "08:10"), bus(2, "10:00"), bus(2, "12:00")]
    # the free transfer uses no ride; the third paid leg finds none left
    assert tenge(legs, Rider(holdings=(rides,))) == [0, 0, 0, 200]
    third = rate(TARIFF, Rider(holdings=(rides,)), legs).legs[2]
    assert (third.reasons[-1].kind, third.reasons[-1].detail) == (
        ReasonKind.RIDE,
        "one ride used, 0 left",
    )


def test_unknown_route_is_refused_naming_the_leg() -> None:
    with pytest.raises(NoFareError, match="leg 1"):
        rate(TARIFF, Rider(), [bus(2, "08:00"), bus(2, "09:00", "999")])


def test_a_new_ten_ride_product_has_its_ten_rides() -> None:
    fresh = Holding("ten-rides", almaty(1, "00:00"), almaty(31, "00:00"))
    legs = [bus(2, f"{hour:02d}:00") for hour in range(6, 18)]  # an hour apart: no transfers
    assert tenge(legs, Rider(holdings=(fresh,))) == [0] * 10 + [200, 200]


def test_six_bus_rides_are_capped_for_an_adult() -> None:
    day = [bus(2, f"{hour:02d}:00") for hour in range(7, 19, 2)]
    assert sum(tenge(day, Rider("adult"))) == 600


@pytest.mark.parametrize(
    ("rider", "field", "value"),
    [
        (Rider("Adult"), "rider_category_id", "Adult"),  # ids are case-sensitive
        (Rider("tourist"), "rider_category_id", "tourist"),
        (Rider("adult", "Card"), "fare_media_id", "Card"),
        (Rider(None, "token"), "fare_media_id", "token"),
    ],
)
def test_a_rider_the_tariff_does_not_define_is_refused(
    rider: Rider, field: str, value: str
) -> None:
    # unchecked, "Adult" matched no category's price and no cap: six rides cost 1200
    day = [bus(2, f"{hour:02d}:00") for hour in range(7, 19, 2)]
    with pytest.raises(UnknownRiderError, match=f"{field} '{value}'") as refused:
        rate(TARIFF, rider, day)
    assert (refused.value.field, refused.value.value) == (field, value)
    with pytest.raises(UnknownRiderError):
        quote(TARIFF, RiderState.start(rider), day[0])
    with pytest.raises(UnknownRiderError):
        rate(TARIFF, rider, [])  # refused before any leg
