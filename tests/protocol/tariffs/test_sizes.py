"""A tariff's amounts and counts fit in 64 signed bits, as its package and the journal's
fares carry them: a larger one is a problem in the list, never a package that cannot be
encoded."""

from __future__ import annotations

import pytest

from farebox.protocol.tariffs.errors import InvalidTariffError
from farebox.protocol.tariffs.native import from_document, load_tariff
from farebox.protocol.tariffs.wire import decode_tariff, encode_tariff
from farebox.protocol.wire import INT64_MAX
from tests.protocol.tariffs.helpers import EXAMPLE, flat_document

# The largest amount in KZT's minor units, written in major units as a tariff states it.
LARGEST_KZT = "92233720368547758.07"
PAST_KZT = "92233720368547758.08"


def at_most(big: int, amount: str) -> dict[str, object]:
    """A flat tariff with every integer field at `big` and every amount at `amount`."""
    return flat_document(
        {"version": big},
        products=[{"id": "ride", "amount": amount}],
        leg_rules=[{"product": "ride", "leg_group": "bus", "network": "bus", "priority": big}],
        transfer_rules=[
            {
                "from_leg_group": "bus",
                "to_leg_group": "bus",
                "transfer_count": big,
                "duration_limit": big,
                "duration_limit_type": "departure_to_departure",
                "fare_transfer_type": "a_plus_ab",
            }
        ],
        caps=[{"id": "day", "period": "day", "amount": amount}],
        passes=[
            {"id": "month", "price": amount, "days": big},
            {"id": "ten", "price": amount, "rides": big},
        ],
    )


def test_every_number_at_64_bits_loads_and_travels_on_the_wire() -> None:
    tariff = from_document(at_most(INT64_MAX, LARGEST_KZT))
    assert decode_tariff(encode_tariff(tariff)) == tariff


def test_every_number_past_64_bits_is_a_problem_in_the_list() -> None:
    with pytest.raises(InvalidTariffError) as caught:
        from_document(at_most(INT64_MAX + 1, PAST_KZT))
    past = f"{INT64_MAX + 1} does not fit in 64 signed bits (amounts in minor units)"
    assert sorted(caught.value.problems) == sorted(
        [
            f"tariff version must be a whole number from 0 to 2**63-1, got {INT64_MAX + 1}",
            f"fare product 'ride' price {past}",
            f"cap 'day' amount {past}",
            f"leg rule 1 priority {past}",
            f"transfer rule 1 transfer_count {past}",
            f"transfer rule 1 duration_limit {past}",
            f"pass 'month' price {past}",
            f"pass 'month' days {past}",
            f"pass 'ten' price {past}",
            f"pass 'ten' rides {past}",
        ]
    )


def test_a_version_written_past_64_bits_in_toml_is_refused() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "version = 1", "version = 99999999999999999999"
    )
    with pytest.raises(InvalidTariffError, match="tariff version must be a whole number from 0"):
        load_tariff(text)
