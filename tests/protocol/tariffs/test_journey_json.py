"""The JSON forms `farebox-server tariff quote` reads and prints."""

from __future__ import annotations

import json

import pytest

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.tariffs.engine import rate
from farebox.protocol.tariffs.journey_json import fare_to_json, read_journey
from tests.protocol.tariffs.helpers import metro

TARIFF = metro()


def test_a_journey_in_local_times_is_quoted_as_decimal_text() -> None:
    journey = {
        "rider_category_id": "adult",
        "fare_media_id": "card",
        "legs": [
            {"route_id": "bus1", "from_stop_id": "s2", "to_stop_id": "s3",
             "departure": "2026-03-02T10:00:00", "arrival": "2026-03-02T10:20:00"},
            {"route_id": "sub1", "from_stop_id": "king-1", "to_stop_id": "union-1",
             "departure": "2026-03-02T10:30:00", "arrival": "2026-03-02T10:40:00"},
        ],
    }  # fmt: skip
    rider, legs = read_journey(json.dumps(journey), TARIFF)
    assert legs[0].departure.utcoffset() is not None
    printed = fare_to_json(rate(TARIFF, rider, legs))
    assert (printed["total"], printed["currency"]) == ("4.00", "CAD")
    assert [leg["amount"] for leg in printed["legs"]] == ["3.00", "1.00"]  # type: ignore[attr-defined]
    json.dumps(printed)  # every value is JSON


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1", "not JSON"),
        ('{"legs": 3}', "a list of legs"),
        ('{"legs": [], "who": 1}', "unknown field"),
        ('{"legs": [{"route_id": "bus1", "from_stop_id": "s2", "departure": "soon"}]}', "soon"),
        (
            '{"legs": [{"route_id": "", "from_stop_id": "s2", "departure": "2026-03-02T10:00"}]}',
            "legs\\[0\\].route_id",
        ),
    ],
)
def test_a_bad_journey_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        read_journey(text, TARIFF)


def test_summary_counts_the_parts() -> None:
    summary = TARIFF.summary()
    assert summary["currency"] == "CAD"
    assert summary["counts"]["transfer_rules"] == 5  # type: ignore[index]
