"""The canonical document of a tariff: the native format with every price spelled out.

`to_document` writes a `Tariff` back as a document of plain strings, integers, booleans,
lists and maps, in a fixed order, so that it encodes to the same bytes every time (the
wire payload of a tariff package) and reads back, through the native reader, to a tariff
that writes the same document. Discounts appear as the prices they produced, names of
networks and areas are not kept, and a route or stop the engine would treat like an
unknown one (no network; no area, station or join rule) is left out.
"""

from __future__ import annotations

from farebox.protocol import cbor
from farebox.protocol.tariffs.amounts import format_amount
from farebox.protocol.tariffs.model import Price
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.timeframes import WEEKDAYS, format_time

Document = dict[str, cbor.Value]


def _some(**fields: cbor.Value) -> Document:
    """The fields that are set: an empty field is left out, as in the native format."""
    return {key: value for key, value in fields.items() if value is not None and value != []}


def _price(price: Price) -> Document:
    return _some(
        amount=format_amount(price.amount),
        rider_category=price.rider_category_id,
        fare_media=price.fare_media_id,
    )


def _places(tariff: Tariff) -> Document:
    stations: dict[str, list[str]] = {}
    for stop in tariff.stops:
        if stop.parent_station is not None:
            stations.setdefault(stop.parent_station, []).append(stop.id)
    joined = {j.from_stop_id for j in tariff.join_rules} | {j.to_stop_id for j in tariff.join_rules}
    covered = {s.id for s in tariff.stops if s.area_ids or s.parent_station} | set(stations)
    # sets of routes and stops are written sorted, so reading order cannot change the bytes
    return _some(
        networks=[
            _some(id=n, routes=sorted(r.id for r in tariff.routes if r.network_id == n))
            for n in tariff.networks
        ],
        areas=[
            _some(id=a, stops=sorted(s.id for s in tariff.stops if a in s.area_ids))
            for a in tariff.areas
        ],
        stations=[
            {"id": station, "stops": sorted(stations[station])} for station in sorted(stations)
        ],
        stops=sorted(s.id for s in tariff.stops if s.id in joined and s.id not in covered),
    )


def to_document(tariff: Tariff) -> Document:
    """The canonical document of `tariff` (deterministic for a given tariff)."""
    document: Document = {
        "tariff": _some(
            id=tariff.id,
            version=tariff.version,
            effective_from=tariff.effective_from.isoformat(),
            currency=tariff.currency,
            timezone=tariff.timezone,
            fare_day_start=format_time(tariff.fare_day_start),
            empty_semantics="priority" if tariff.priority_semantics else "exclusive",
            alternatives=tariff.alternatives,
        ),
        "rider_categories": [
            {"id": c.id, "name": c.name, "default": c.is_default} for c in tariff.rider_categories
        ],
        "fare_media": [
            {"id": m.id, "name": m.name, "type": m.type.name.lower()} for m in tariff.fare_media
        ],
        **_places(tariff),
        "timeframes": [
            _some(
                id=f.group_id,
                start=format_time(f.start),
                end=format_time(f.end),
                days=[WEEKDAYS[d] for d in sorted(f.weekdays)],
                dates=[d.isoformat() for d in sorted(f.dates)],
            )
            for f in tariff.timeframes
        ],
        "products": [
            {"id": p.id, "name": p.name, "prices": [_price(x) for x in p.prices]}
            for p in tariff.products
        ],
        "leg_rules": [
            _some(
                product=r.fare_product_id,
                leg_group=r.leg_group_id,
                network=r.network_id,
                from_area=r.from_area_id,
                to_area=r.to_area_id,
                from_timeframe=r.from_timeframe_group_id,
                to_timeframe=r.to_timeframe_group_id,
                priority=r.priority,
            )
            for r in tariff.leg_rules
        ],
        "join_rules": [
            _some(
                from_network=j.from_network_id,
                to_network=j.to_network_id,
                from_stop=j.from_stop_id,
                to_stop=j.to_stop_id,
            )
            for j in tariff.join_rules
        ],
        "transfer_rules": [
            _some(
                from_leg_group=t.from_leg_group_id,
                to_leg_group=t.to_leg_group_id,
                transfer_count=t.transfer_count,
                duration_limit=t.duration_limit,
                duration_limit_type=(
                    None if t.duration_limit_type is None else t.duration_limit_type.name.lower()
                ),
                fare_transfer_type=t.fare_transfer_type.name.lower(),
                product=t.fare_product_id,
            )
            for t in tariff.transfer_rules
        ],
        "caps": [
            _some(
                id=c.id,
                period=c.period.name.lower(),
                amount=format_amount(c.amount),
                rider_categories=sorted(c.rider_category_ids),
                networks=sorted(c.network_ids),
            )
            for c in tariff.caps
        ],
        "passes": [
            _some(
                id=p.id,
                name=p.name,
                price=format_amount(p.price),
                days=p.days,
                rides=p.rides,
                networks=sorted(p.network_ids),
            )
            for p in tariff.passes
        ],
        "max_fares": [
            {"network": m.network_id, "product": m.fare_product_id} for m in tariff.max_fares
        ],
    }
    return {key: value for key, value in document.items() if value != []}
