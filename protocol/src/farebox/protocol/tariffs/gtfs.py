"""Import a GTFS feed's Fares v2 files into a `Tariff`, with the spec's semantics.

Files read: agency.txt (time zone), routes.txt (route_id, network_id), stops.txt
(parent stations), networks.txt, route_networks.txt, areas.txt, stop_areas.txt,
timeframes.txt with calendar.txt and calendar_dates.txt (a timeframe's service_id becomes
the dates it runs), rider_categories.txt, fare_media.txt, fare_products.txt,
fare_leg_rules.txt, fare_leg_join_rules.txt and fare_transfer_rules.txt.

Semantics kept from the spec: the presence of the `rule_priority` column chooses how an
empty leg rule field matches; a station in stop_areas.txt puts its platforms in the area
unless a platform is given areas of its own; rules matching at the same priority are
alternatives (the rider is charged the cheapest). A feed's problems are listed together,
each with its file and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import NO_CURRENCY, check_currency
from farebox.protocol.tariffs.amounts import parse_amount
from farebox.protocol.tariffs.document import Problems
from farebox.protocol.tariffs.errors import InvalidTariffError
from farebox.protocol.tariffs.gtfs_files import Feed, Row, service_dates
from farebox.protocol.tariffs.model import (
    DurationLimitType,
    FareMedia,
    FareMediaType,
    FareProduct,
    FareTransferType,
    JoinRule,
    LegRule,
    Price,
    RiderCategory,
    Route,
    Stop,
    TransferRule,
)
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.timeframes import DAY, Timeframe, parse_time
from farebox.protocol.tariffs.zones import zone as load_zone

REQUIRED = ("agency.txt", "routes.txt", "stops.txt", "fare_products.txt", "fare_leg_rules.txt")


def import_gtfs(
    files: Mapping[str, str],
    *,
    tariff_id: str = "gtfs",
    version: int = 0,
    effective_from: datetime | None = None,
    fare_day_start: int = 0,
) -> Tariff:
    """Build a tariff from a feed's files (name to text); list every problem if it fails.

    Without `effective_from`, the tariff is in force from feed_info.txt's feed_start_date
    (local midnight), or from 1970-01-01 if the feed gives none. GTFS has no fare day: its
    start (seconds after local midnight) is the operator's, `fare_day_start`.
    """
    feed = Feed(files)
    problems = Problems()
    for name in REQUIRED:
        if not feed.has(name):
            problems.add(name, "missing from the feed")
    zone = _time_zone(feed, problems)
    networks, routes = _networks(feed, problems)
    areas, stops = _areas_and_stops(feed, problems)
    products = _products(feed, problems)
    currency = next((p.prices[0].amount.currency for p in products), NO_CURRENCY)
    start = effective_from or _feed_start(feed, zone, problems)
    try:
        tariff = Tariff(
            id=tariff_id,
            version=version,
            effective_from=start,
            currency=currency,
            timezone=zone,
            fare_day_start=fare_day_start,
            priority_semantics="rule_priority" in feed.columns("fare_leg_rules.txt"),
            alternatives=True,
            rider_categories=tuple(_categories(feed, problems)),
            fare_media=tuple(_media(feed, problems)),
            products=tuple(products),
            networks=tuple(networks),
            areas=tuple(areas),
            routes=tuple(routes),
            stops=tuple(stops),
            timeframes=tuple(_timeframes(feed, problems)),
            leg_rules=tuple(_leg_rules(feed, problems)),
            join_rules=tuple(_join_rules(feed, problems)),
            transfer_rules=tuple(_transfer_rules(feed, problems)),
        )
    except InvalidTariffError as error:
        raise InvalidTariffError([*problems.found, *error.problems]) from None
    if problems.found:
        raise InvalidTariffError(problems.found)
    return tariff


def _time_zone(feed: Feed, problems: Problems) -> str:
    zones = {row.need("agency_timezone", problems) for row in feed.rows("agency.txt")}
    zones.discard("")
    if len(zones) != 1:
        problems.add("agency.txt", f"needs one agency_timezone, found {sorted(zones)}")
        return "UTC"
    zone = zones.pop()
    try:
        load_zone(zone)
    except InvalidValueError:
        problems.add("agency.txt", f"unknown agency_timezone {zone!r}")
        return "UTC"
    return zone


def _feed_start(feed: Feed, zone: str, problems: Problems) -> datetime:
    tz = load_zone(zone)
    for row in feed.rows("feed_info.txt"):
        text = row.get("feed_start_date")
        if text is not None:
            try:
                return datetime.combine(
                    date(int(text[:4]), int(text[4:6]), int(text[6:])), time(), tz
                )
            except ValueError:
                problems.add(row.where, f"feed_start_date {text!r} is not YYYYMMDD")
    return datetime.combine(date(1970, 1, 1), time(), tz)


def _networks(feed: Feed, problems: Problems) -> tuple[list[str], list[Route]]:
    network_of: dict[str, str] = {}
    for row in feed.rows("route_networks.txt"):
        network_of[row.need("route_id", problems)] = row.need("network_id", problems)
    routes = []
    for row in feed.rows("routes.txt"):
        route = row.need("route_id", problems)
        network = row.get("network_id") or network_of.get(route)
        if route and network:
            routes.append(Route(route, network))
    known = [row.need("network_id", problems) for row in feed.rows("networks.txt")]
    used = [r.network_id for r in routes if r.network_id and r.network_id not in known]
    return [*known, *dict.fromkeys(used)], routes


def _areas_and_stops(feed: Feed, problems: Problems) -> tuple[list[str], list[Stop]]:
    areas = [row.need("area_id", problems) for row in feed.rows("areas.txt")]
    assigned: dict[str, set[str]] = {}
    for row in feed.rows("stop_areas.txt"):
        assigned.setdefault(row.need("stop_id", problems), set()).add(row.need("area_id", problems))
    parents = {}
    known = set()
    for row in feed.rows("stops.txt"):
        stop = row.need("stop_id", problems)
        known.add(stop)
        parent = row.get("parent_station")
        if parent is not None:
            parents[stop] = parent
    for stop in sorted(set(assigned) - known):
        problems.add("stop_areas.txt", f"unknown stop {stop!r}")
    joined: set[str] = set()
    for row in feed.rows("fare_leg_join_rules.txt"):
        joined.update(s for s in (row.get("from_stop_id"), row.get("to_stop_id")) if s)
    wanted = set(assigned) | set(parents) | set(parents.values()) | joined
    stops = [
        # a platform inherits its station's areas unless it is given areas of its own
        Stop(
            s, frozenset(assigned.get(s) or assigned.get(parents.get(s, ""), set())), parents.get(s)
        )
        for s in sorted(wanted & known)
    ]
    return areas, stops


def _categories(feed: Feed, problems: Problems) -> list[RiderCategory]:
    return [
        RiderCategory(
            row.need("rider_category_id", problems) or "?",
            row.get("rider_category_name") or "",
            row.get("is_default_fare_category") == "1",
        )
        for row in feed.rows("rider_categories.txt")
    ]


def _media(feed: Feed, problems: Problems) -> list[FareMedia]:
    media = []
    for row in feed.rows("fare_media.txt"):
        kind = row.integer("fare_media_type", problems)
        if kind is None or kind not in FareMediaType.__members__.values():
            problems.add(row.where, f"fare_media_type {kind!r} is not 0 to 4")
            continue
        ident = row.need("fare_media_id", problems) or "?"
        media.append(FareMedia(ident, row.get("fare_media_name") or ident, FareMediaType(kind)))
    return media


def _products(feed: Feed, problems: Problems) -> list[FareProduct]:
    prices: dict[str, list[Price]] = {}
    names: dict[str, str] = {}
    for row in feed.rows("fare_products.txt"):
        ident = row.need("fare_product_id", problems)
        try:
            currency = check_currency(row.need("currency", problems))
            amount = parse_amount(row.need("amount", problems), currency)
        except InvalidValueError as error:
            problems.add(row.where, str(error))
            continue
        names.setdefault(ident, row.get("fare_product_name") or ident)
        prices.setdefault(ident, []).append(
            Price(amount, row.get("rider_category_id"), row.get("fare_media_id"))
        )
    products = []
    for ident, offered in prices.items():
        made = problems.build("fare_products.txt", FareProduct, ident, names[ident], tuple(offered))
        if made is not None:
            products.append(made)
    return products


def _timeframes(feed: Feed, problems: Problems) -> list[Timeframe]:
    rows = list(feed.rows("timeframes.txt"))
    dates = service_dates(feed, {row.need("service_id", problems) for row in rows}, problems)
    frames = []
    for row in rows:
        start_text, end_text = row.get("start_time"), row.get("end_time")
        if (start_text is None) != (end_text is None):
            problems.add(row.where, "start_time and end_time go together")
            continue
        try:
            start = parse_time(start_text or "00:00:00")
            end = parse_time(end_text or "24:00:00")
        except InvalidValueError as error:
            problems.add(row.where, str(error))
            continue
        if end > DAY:
            problems.add(row.where, "end_time after 24:00:00 is forbidden by GTFS")
            continue
        service = row.need("service_id", problems)
        days = frozenset(dates.get(service, set()))
        if not days:
            problems.add(row.where, f"service_id {service!r} runs on no date in the calendar")
            continue
        made = problems.build(
            row.where,
            Timeframe,
            row.need("timeframe_group_id", problems),
            start,
            end,
            frozenset(),
            days,
        )
        frames.extend([made] if made is not None else [])
    return frames


def _leg_rules(feed: Feed, problems: Problems) -> list[LegRule]:
    rules = []
    for row in feed.rows("fare_leg_rules.txt"):
        made = problems.build(
            row.where,
            LegRule,
            row.need("fare_product_id", problems),
            leg_group_id=row.get("leg_group_id"),
            network_id=row.get("network_id"),
            from_area_id=row.get("from_area_id"),
            to_area_id=row.get("to_area_id"),
            from_timeframe_group_id=row.get("from_timeframe_group_id"),
            to_timeframe_group_id=row.get("to_timeframe_group_id"),
            priority=row.integer("rule_priority", problems) or 0,
        )
        rules.extend([made] if made is not None else [])
    return rules


def _join_rules(feed: Feed, problems: Problems) -> list[JoinRule]:
    rules = []
    for row in feed.rows("fare_leg_join_rules.txt"):
        made = problems.build(
            row.where,
            JoinRule,
            row.need("from_network_id", problems),
            row.need("to_network_id", problems),
            row.get("from_stop_id"),
            row.get("to_stop_id"),
        )
        rules.extend([made] if made is not None else [])
    return rules


def _enum(
    row: Row, field: str, kind: type[DurationLimitType] | type[FareTransferType], problems: Problems
) -> int | None:
    value = row.integer(field, problems)
    if value is not None and value not in kind.__members__.values():
        problems.add(row.where, f"{field} {value} is not one of {[int(m) for m in kind]}")
        return None
    return value


def _transfer_rules(feed: Feed, problems: Problems) -> list[TransferRule]:
    rules = []
    for row in feed.rows("fare_transfer_rules.txt"):
        kind = _enum(row, "fare_transfer_type", FareTransferType, problems)
        limit_type = _enum(row, "duration_limit_type", DurationLimitType, problems)
        if kind is None:
            if row.get("fare_transfer_type") is None:
                problems.add(row.where, "fare_transfer_type is required")
            continue
        made = problems.build(
            row.where,
            TransferRule,
            FareTransferType(kind),
            row.get("from_leg_group_id"),
            row.get("to_leg_group_id"),
            row.integer("transfer_count", problems),
            row.integer("duration_limit", problems),
            None if limit_type is None else DurationLimitType(limit_type),
            row.get("fare_product_id"),
        )
        rules.extend([made] if made is not None else [])
    return rules
