"""Journeys and fares as JSON text, for `farebox-server tariff quote` and the operator API.

A journey document is

    {"rider_category_id": "student",        (optional)
     "fare_media_id": "card",               (optional)
     "legs": [{"route_id": "12", "from_stop_id": "a", "to_stop_id": "b",
               "departure": "2026-03-02T08:00:00", "arrival": "2026-03-02T08:20:00"}]}

with times local to the tariff's time zone (an explicit offset is also accepted);
`to_stop_id` and `arrival` may be left out (no tap-off). A fare is written as
`{"total": "4.65", "currency": "CAD", "legs": [...]}` with amounts in major units.
"""

from __future__ import annotations

import json
from datetime import datetime

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.tariffs.amounts import format_amount
from farebox.protocol.tariffs.engine import Fare
from farebox.protocol.tariffs.journey import Leg, Rider
from farebox.protocol.tariffs.tariff import Tariff

LEG_FIELDS = {"route_id", "from_stop_id", "to_stop_id", "departure", "arrival"}


def _time(tariff: Tariff, value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidValueError(f"{where}: expected YYYY-MM-DDTHH:MM:SS")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValueError(f"{where}: {value!r} is not YYYY-MM-DDTHH:MM:SS") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tariff.zone)


def _text(value: object, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidValueError(f"{where}: expected a non-empty string")
    return value


def read_journey(text: str, tariff: Tariff) -> tuple[Rider, list[Leg]]:
    """The rider and legs of a journey document; InvalidValueError says what is wrong."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidValueError(f"journey: not JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("legs"), list):
        raise InvalidValueError("journey: expected an object with a list of legs")
    unknown = set(document) - {"rider_category_id", "fare_media_id", "legs"}
    if unknown:
        raise InvalidValueError(f"journey: unknown field(s) {', '.join(sorted(unknown))}")
    category = _text(document.get("rider_category_id"), "rider_category_id", optional=True)
    media = _text(document.get("fare_media_id"), "fare_media_id", optional=True)
    legs = []
    for index, raw in enumerate(document["legs"]):
        where = f"legs[{index}]"
        if not isinstance(raw, dict) or set(raw) - LEG_FIELDS:
            raise InvalidValueError(f"{where}: expected an object with {sorted(LEG_FIELDS)}")
        arrival = raw.get("arrival")
        legs.append(
            Leg(
                route_id=_text(raw.get("route_id"), f"{where}.route_id") or "",
                from_stop_id=_text(raw.get("from_stop_id"), f"{where}.from_stop_id") or "",
                departure=_time(tariff, raw.get("departure"), f"{where}.departure"),
                to_stop_id=_text(raw.get("to_stop_id"), f"{where}.to_stop_id", optional=True),
                arrival=None if arrival is None else _time(tariff, arrival, f"{where}.arrival"),
            )
        )
    return Rider(category, media), legs


def fare_to_json(fare: Fare) -> dict[str, object]:
    """A rated journey as a JSON-ready object: total, currency, and each leg with reasons."""
    return {
        "total": format_amount(fare.total),
        "currency": fare.total.currency,
        "legs": [
            {
                "index": leg.index,
                "product_id": leg.product_id,
                "fare": format_amount(leg.fare),
                "amount": format_amount(leg.amount),
                "reasons": [
                    {"kind": r.kind.value, "ref": r.ref, "detail": r.detail} for r in leg.reasons
                ],
            }
            for leg in fare.legs
        ],
    }
