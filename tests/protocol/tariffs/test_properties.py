"""Properties of the engine over generated fare days on the worked example and the GTFS feed."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from farebox.protocol.errors import DecodeError
from farebox.protocol.money import Money
from farebox.protocol.tariffs.amounts import RoundingMode, discounted, format_amount, parse_amount
from farebox.protocol.tariffs.capping import fare_day
from farebox.protocol.tariffs.engine import RiderState, quote, rate
from farebox.protocol.tariffs.journey import Holding, Leg, Rider
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.wire import decode_tariff
from tests.protocol.tariffs.helpers import almaty, example, metro, toronto

EXAMPLE = example()
METRO = metro()
SUBURBAN = ["S1-almaty-2", "S1-sayakhat", "S1-boraldai", "S1-airport"]
CAP = {"adult": 60000, None: 60000, "student": 30000, "school": 30000}


@st.composite
def example_days(draw: st.DrawFn) -> list[Leg]:
    moment = almaty(2, "04:00")
    legs = []
    for _ in range(draw(st.integers(1, 10))):
        moment += timedelta(minutes=draw(st.integers(0, 300)))
        route = draw(st.sampled_from(["12", "32", "92", "121", "M1", "S1"]))
        if route != "S1":
            legs.append(Leg(route, "stop", moment))
            continue
        to = draw(st.none() | st.sampled_from(SUBURBAN))
        off = None if to is None else moment + timedelta(minutes=draw(st.integers(5, 60)))
        legs.append(Leg(route, draw(st.sampled_from(SUBURBAN)), moment, to, off))
    return legs


@st.composite
def metro_days(draw: st.DrawFn) -> list[Leg]:
    moment = toronto(3, 2, "05:00")
    stops = ["s1", "s2", "s3", "union-1", "union-2", "union-r", "king-1", "r-suburb", "r-far"]
    legs = []
    for _ in range(draw(st.integers(1, 8))):
        moment += timedelta(minutes=draw(st.integers(0, 200)))
        route = draw(st.sampled_from(["bus1", "bus2", "sub1", "sub2", "exp", "rail"]))
        to = draw(st.none() | st.sampled_from(stops))
        off = None if to is None else moment + timedelta(minutes=draw(st.integers(1, 90)))
        legs.append(Leg(route, draw(st.sampled_from(stops)), moment, to, off))
    return legs


categories = st.sampled_from([None, "adult", "student", "school", "pensioner", "free"])
holdings = st.lists(
    st.builds(
        Holding,
        st.sampled_from(["month-city", "ten-rides"]),
        st.just(almaty(1, "00:00")),
        st.just(almaty(31, "00:00")),
        st.none() | st.integers(0, 3),
    ),
    max_size=2,
).map(tuple)
riders = st.builds(Rider, categories, st.sampled_from([None, "card", "qr", "bank"]), holdings)
metro_riders = st.builds(
    Rider, st.sampled_from([None, "adult", "senior"]), st.sampled_from([None, "card", "cash"])
)


def _check_fold(tariff: Tariff, rider: Rider, legs: list[Leg]) -> None:
    fare = rate(tariff, rider, legs)
    assert fare == rate(tariff, rider, legs)  # deterministic
    assert fare.total.minor == sum(leg.amount.minor for leg in fare.legs)
    state = RiderState.start(rider)
    for leg, priced in zip(legs, fare.legs, strict=True):
        quoted = quote(tariff, state, leg)  # the agent's one-tap quote agrees with the day
        assert quoted.leg == priced
        state = quoted.state
    assert state == fare.state


@given(riders, example_days())
def test_example_quotes_are_a_deterministic_fold(rider: Rider, legs: list[Leg]) -> None:
    _check_fold(EXAMPLE, rider, legs)


@given(metro_riders, metro_days())
def test_gtfs_quotes_are_a_deterministic_fold(rider: Rider, legs: list[Leg]) -> None:
    _check_fold(METRO, rider, legs)


@given(categories, example_days())
def test_daily_caps_are_never_exceeded(category: str | None, legs: list[Leg]) -> None:
    fare = rate(EXAMPLE, Rider(category), legs)
    per_day: dict[object, int] = defaultdict(int)
    for leg, priced in zip(legs, fare.legs, strict=True):
        assert 0 <= priced.amount.minor <= max(priced.fare.minor, 0)
        per_day[fare_day(EXAMPLE, leg.departure)] += priced.amount.minor
    limit = CAP.get(category, 0)
    assert all(total <= limit for total in per_day.values())


@given(riders, riders, example_days(), example_days())
def test_interleaving_unrelated_riders_changes_nothing(
    first: Rider, second: Rider, legs_a: list[Leg], legs_b: list[Leg]
) -> None:
    states = {"a": RiderState.start(first), "b": RiderState.start(second)}
    merged = sorted(
        [("a", i, leg) for i, leg in enumerate(legs_a)]
        + [("b", i, leg) for i, leg in enumerate(legs_b)],
        key=lambda item: (item[2].departure, item[0], item[1]),
    )
    seen: dict[str, list[Money]] = {"a": [], "b": []}
    for who, _, leg in merged:
        quoted = quote(EXAMPLE, states[who], leg)
        states[who] = quoted.state
        seen[who].append(quoted.leg.amount)
    assert seen["a"] == [leg.amount for leg in rate(EXAMPLE, first, legs_a).legs]
    assert seen["b"] == [leg.amount for leg in rate(EXAMPLE, second, legs_b).legs]


@given(st.integers(-(10**12), 10**12), st.sampled_from(["KZT", "JPY", "KWD", "CLF", "XXX"]))
def test_amount_text_round_trips(minor: int, currency: str) -> None:
    money = Money(minor, currency)
    assert parse_amount(format_amount(money), currency) == money


@given(st.integers(-(10**9), 10**9), st.integers(0, 100), st.sampled_from([1, 5, 100, 500]))
def test_discounts_round_within_one_increment_in_the_stated_direction(
    minor: int, percent: int, increment: int
) -> None:
    amount = Money(minor, "KZT")
    exact = abs(minor) * (100 - percent) / 100
    results = {
        mode: abs(discounted(amount, percent, increment, mode).minor) for mode in RoundingMode
    }
    assert all(value % increment == 0 for value in results.values())
    assert results[RoundingMode.DOWN] <= exact <= results[RoundingMode.UP]
    assert results[RoundingMode.UP] - results[RoundingMode.DOWN] <= increment
    assert abs(results[RoundingMode.HALF_UP] - exact) <= increment / 2


@given(st.binary(max_size=200))
def test_decoding_random_bytes_raises_only_decode_error(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_tariff(raw)
