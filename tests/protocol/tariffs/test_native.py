"""The native tariff format: every problem listed at once, discounts, night timeframes, caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.tariffs.canonical import to_document
from farebox.protocol.tariffs.engine import ReasonKind, quote, rate
from farebox.protocol.tariffs.errors import InvalidTariffError
from farebox.protocol.tariffs.journey import Leg, Rider
from farebox.protocol.tariffs.native import from_document, load_tariff
from farebox.protocol.tariffs.tariff import in_force
from farebox.protocol.tariffs.wire import decode_tariff, encode_tariff
from tests.protocol.tariffs.helpers import almaty, example, flat_document, metro

GOLDEN = Path(__file__).parent / "golden" / "city-kzt.cbor"


def charged(document: dict[str, object], legs: list[Leg], rider: Rider | None = None) -> list[int]:
    fare = rate(from_document(document), rider or Rider(), legs)
    return [leg.amount.minor for leg in fare.legs]


def problems_of(document: dict[str, object]) -> str:
    with pytest.raises(InvalidTariffError) as caught:
        from_document(document)
    return "\n".join(caught.value.problems)


def test_a_bad_tariff_is_refused_with_every_problem_listed() -> None:
    document = flat_document(
        {"timezone": "Mars/Olympus"},
        rider_categories=[{"id": "adult"}, {"id": "student", "discount_percent": 150}],
        products=[
            {"id": "ride", "amount": "100", "colour": "red"},
            {"id": "credit", "amount": "-50"},
            {"id": "odd", "amount": 1.5},
        ],
        leg_rules=[
            {"product": "ride", "network": "bus"},
            {"product": "ride", "network": "bus"},
            {"product": "credit", "network": "tram"},
            {"product": "nothing", "from_area": "nowhere"},
        ],
        caps=[{"id": "day", "period": "fortnight", "amount": "600"}],
    )
    text = problems_of(document)
    for expected in (
        "unknown field(s) colour",
        "discount_percent: must be 0 to 100",
        "products[2].amount: expected a decimal string",
        "unknown time zone 'Mars/Olympus'",
        "exactly one rider category must be the default, found 0",
        "leg rule 2 overlaps leg rule 1",
        "leg rule 3: unknown network 'tram'",
        "leg rule 3: fare product 'credit' has a negative price for a leg",
        "leg rule 4: unknown area 'nowhere'",
        "leg rule 4: unknown fare product 'nothing'",
        "caps[0].period: 'fortnight' is not one of day, week",
    ):
        assert expected in text


def test_overlapping_rules_are_fine_with_distinct_priorities() -> None:
    document = flat_document(
        products=[{"id": "ride", "amount": "100"}, {"id": "promo", "amount": "50"}],
        leg_rules=[
            {"product": "ride", "network": "bus"},
            {"product": "promo", "network": "bus", "priority": 1},
        ],
    )
    assert charged(document, [Leg("1", "a", almaty(2, "10:00"))]) == [5000]


def test_not_toml_is_one_problem() -> None:
    with pytest.raises(InvalidTariffError, match="not valid TOML"):
        load_tariff("[tariff\nid = 1")


@pytest.mark.parametrize(
    ("rounding", "increment", "student_pays"),
    [
        ("half_up", "1", 6300),  # 125 * 50% = 62.50 -> 63
        ("down", "1", 6200),
        ("up", "1", 6300),
        ("half_up", "5", 6500),  # 62.50 -> nearest multiple of 5, tie away from zero
        ("down", "5", 6000),
        ("half_up", "0.01", 6250),
    ],
)
def test_percentage_discounts_round_as_the_tariff_says(
    rounding: str, increment: str, student_pays: int
) -> None:
    document = flat_document(
        {"rounding": rounding, "rounding_increment": increment},
        rider_categories=[
            {"id": "adult", "default": True},
            {"id": "student", "discount_percent": 50},
        ],
        products=[{"id": "ride", "amount": "125"}],
    )
    leg = Leg("1", "a", almaty(2, "10:00"))
    assert charged(document, [leg], Rider("student")) == [student_pays]


def test_explicit_price_beats_the_category_discount() -> None:
    document = flat_document(
        rider_categories=[
            {"id": "adult", "default": True},
            {"id": "student", "discount_percent": 50},
        ],
        products=[
            {
                "id": "ride",
                "amount": "100",
                "prices": [{"rider_category": "student", "amount": "30"}],
            }
        ],
    )
    assert charged(document, [Leg("1", "a", almaty(2, "10:00"))], Rider("student")) == [3000]


def test_night_timeframe_runs_past_midnight() -> None:
    document = flat_document(
        timeframes=[{"id": "friday-night", "days": ["fri"], "start": "22:00", "end": "26:00"}],
        products=[{"id": "ride", "amount": "100"}, {"id": "night", "amount": "150"}],
        leg_rules=[
            {"product": "ride", "network": "bus"},
            {"product": "night", "network": "bus", "from_timeframe": "friday-night", "priority": 1},
        ],
    )
    # 6 March 2026 is a Friday
    legs = [
        Leg("1", "a", almaty(day, clock))
        for day, clock in [(6, "21:59"), (6, "22:00"), (7, "01:59"), (7, "02:00"), (7, "23:00")]
    ]
    assert charged(document, legs) == [10000, 15000, 15000, 10000, 10000]


def test_weekly_cap() -> None:
    document = flat_document(caps=[{"id": "week", "period": "week", "amount": "250"}])
    # Sunday 8 March, then Monday 9 March starts a new ISO week
    legs = [Leg("1", "a", almaty(day, "12:00")) for day in (2, 3, 4, 8, 9)]
    assert charged(document, legs) == [10000, 10000, 5000, 0, 10000]


def test_type_2_transfer_cheaper_than_the_first_leg_is_credit_for_later() -> None:
    document = flat_document(
        products=[{"id": "ride", "amount": "100"}, {"id": "combo", "amount": "80"}],
        transfer_rules=[
            {
                "from_leg_group": "bus",
                "to_leg_group": "bus",
                "transfer_count": 1,
                "duration_limit": 1800,
                "duration_limit_type": "departure_to_departure",
                "fare_transfer_type": "ab",
                "product": "combo",
            }
        ],
    )
    legs = [Leg("1", "a", almaty(2, "10:00")), Leg("2", "b", almaty(2, "10:10"))]
    fare = rate(from_document(document), Rider(), legs)
    # the journey costs 80 but 100 was charged at the first tap: no leg is charged less
    # than nothing, the 20 is credit taken off the next charge of the fare day
    assert [(leg.fare.minor, leg.amount.minor) for leg in fare.legs] == [(10000, 10000), (-2000, 0)]
    assert fare.legs[1].reasons[-1].kind is ReasonKind.CREDIT
    later = [*legs, Leg("1", "c", almaty(2, "12:00")), Leg("1", "d", almaty(2, "14:00"))]
    assert charged(document, later) == [10000, 0, 8000, 10000]
    # a credit not used by the end of the fare day lapses
    next_day = [*legs, Leg("1", "c", almaty(3, "12:00"))]
    assert charged(document, next_day) == [10000, 0, 10000]


def test_canonical_document_reads_back_to_itself() -> None:
    document = to_document(example())
    assert to_document(from_document(document)) == document


def test_wire_bytes_match_the_golden_vector() -> None:
    assert encode_tariff(example()) == GOLDEN.read_bytes()
    assert encode_tariff(decode_tariff(GOLDEN.read_bytes())) == GOLDEN.read_bytes()


def test_wire_refuses_a_wrong_version_and_an_invalid_tariff() -> None:
    with pytest.raises(DecodeError, match="unknown version"):
        decode_tariff(cbor.encode({"v": 99, "tariff": {}}))
    broken = to_document(example())
    broken["leg_rules"] = [{"product": "missing"}]
    with pytest.raises(DecodeError, match="unknown fare product 'missing'"):
        decode_tariff(cbor.encode({"v": 1, "tariff": broken}))


def test_an_imported_gtfs_tariff_travels_on_the_wire_unchanged() -> None:
    for semantics in (None, "leg_group_id,network_id,fare_product_id\nbus,bus,bus_fare\n"):
        tariff = (
            metro()
            if semantics is None
            else metro(fare_leg_rules=semantics, fare_transfer_rules=None)
        )
        raw = encode_tariff(tariff)
        again = decode_tariff(raw)
        assert encode_tariff(again) == raw
        assert again.priority_semantics == tariff.priority_semantics
        assert again.timeframes == tariff.timeframes


def test_the_tariff_in_force_is_the_latest_started_version() -> None:
    old = from_document(flat_document({"version": 1}))
    new = from_document(
        flat_document({"version": 2, "effective_from": "2026-03-05T03:00:00+05:00"})
    )
    assert in_force([new, old], almaty(4, "12:00")) is old
    assert in_force([old, new], almaty(5, "03:00")) is new
    assert in_force([new], almaty(1, "00:00")) is None


def test_a_tariff_published_again_with_the_same_start_and_version_replaces_it() -> None:
    first = from_document(flat_document({"version": 0}))
    corrected = from_document(flat_document({"version": 0, "id": "city-corrected"}))
    assert in_force([first, corrected], almaty(4, "12:00")) is corrected  # the later one


def test_a_rider_state_is_not_carried_into_another_tariff() -> None:
    old = from_document(flat_document({"version": 1}))
    new = from_document(flat_document({"version": 2}))
    state = rate(old, Rider(), [Leg("1", "a", almaty(2, "10:00"))]).state
    with pytest.raises(InvalidValueError, match="rate the legs again"):
        quote(new, state, Leg("1", "a", almaty(2, "11:00")))


def test_each_problem_is_listed_once() -> None:
    document = flat_document(networks=[{"id": "bus", "routes": ["1"], "colour": "red"}])
    with pytest.raises(InvalidTariffError) as caught:
        from_document(document)
    assert caught.value.problems == ("networks[0]: unknown field(s) colour",)
