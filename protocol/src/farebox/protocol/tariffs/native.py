"""The native tariff format: a TOML document read into a `Tariff`, every problem listed.

The format is GTFS-Fares v2's model written as one file, plus our extensions (caps,
passes, maximum fares, percentage discounts by rider category). docs/tariffs.md describes
it field by field; packaging/tariffs/ holds a worked example. The same document shape,
with every price explicit, is the tariff's canonical form (see `canonical`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import TypeVar

from farebox.protocol.money import NO_CURRENCY, check_currency
from farebox.protocol.tariffs.amounts import RoundingMode, discounted
from farebox.protocol.tariffs.document import Problems, Table
from farebox.protocol.tariffs.errors import InvalidTariffError
from farebox.protocol.tariffs.model import (
    Cap,
    CapPeriod,
    DurationLimitType,
    FareMedia,
    FareMediaType,
    FareProduct,
    FareTransferType,
    JoinRule,
    LegRule,
    MaxFare,
    Pass,
    Price,
    RiderCategory,
    Route,
    Stop,
    TransferRule,
)
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.timeframes import DAY, WEEKDAYS, Timeframe

E = TypeVar("E", bound=Enum)


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


HEADER = _keys(
    "id",
    "version",
    "effective_from",
    "currency",
    "timezone",
    "fare_day_start",
    "rounding",
    "rounding_increment",
    "empty_semantics",
    "alternatives",
)
SECTIONS = _keys(
    "tariff",
    "rider_categories",
    "fare_media",
    "networks",
    "areas",
    "stations",
    "stops",
    "timeframes",
    "products",
    "leg_rules",
    "join_rules",
    "transfer_rules",
    "caps",
    "passes",
    "max_fares",
)
CATEGORY = _keys("id", "name", "default", "discount_percent")
MEDIA = _keys("id", "name", "type")
GROUP = _keys("id", "name", "routes", "stops")
TIMEFRAME = _keys("id", "start", "end", "days", "dates")
PRODUCT = _keys("id", "name", "amount", "prices")
PRICE = _keys("amount", "rider_category", "fare_media")
LEG_RULE = _keys(
    "product",
    "leg_group",
    "network",
    "from_area",
    "to_area",
    "from_timeframe",
    "to_timeframe",
    "priority",
)
JOIN_RULE = _keys("from_network", "to_network", "from_stop", "to_stop")
TRANSFER_RULE = _keys(
    "from_leg_group",
    "to_leg_group",
    "transfer_count",
    "duration_limit",
    "duration_limit_type",
    "fare_transfer_type",
    "product",
)
CAP = _keys("id", "period", "amount", "rider_categories", "networks")
PASS = _keys("id", "name", "price", "days", "rides", "networks")
MAX_FARE = _keys("network", "product")


def load_tariff(text: str) -> Tariff:
    """Read a native TOML tariff; a bad one raises InvalidTariffError listing every problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidTariffError([f"not valid TOML: {error}"]) from None
    return from_document(document)


def _choice(table: Table, key: str, kind: type[E], *, required: bool = True) -> E | None:
    """An enum member written by its lower-case name (for example "transit_card")."""
    name = table.text(key, required=required)
    if name is None:
        return None
    try:
        return kind[name.upper()]
    except KeyError:
        choices = ", ".join(member.name.lower() for member in kind)
        table.problems.add(f"{table.path}.{key}", f"{name!r} is not one of {choices}")
        return None


def from_document(document: Mapping[str, object]) -> Tariff:
    """Build a tariff from a parsed document; raise InvalidTariffError listing every problem."""
    problems = Problems()
    root = Table(document, "", problems, SECTIONS)
    head = root.table("tariff", HEADER)
    code = head.text("currency")
    currency = (code and problems.build("tariff.currency", check_currency, code)) or NO_CURRENCY
    rounding = _choice(head, "rounding", RoundingMode, required=False) or RoundingMode.HALF_UP
    increment = 1
    if "rounding_increment" in head.values:
        step = head.money("rounding_increment", currency)
        if step is not None and step.minor <= 0:
            problems.add("tariff.rounding_increment", "must be positive")
        elif step is not None:
            increment = step.minor
    semantics = head.text("empty_semantics", required=False) or "priority"
    if semantics not in ("priority", "exclusive"):
        problems.add("tariff.empty_semantics", "must be priority or exclusive")
    categories, discounts = _categories(root)
    networks, areas, routes, stops = _places(root)
    products = [
        made
        for table in root.tables("products", PRODUCT)
        if (made := _product(table, currency, discounts, increment, rounding))
    ]
    effective_from = head.moment("effective_from")
    version = head.integer("version")
    try:
        tariff = Tariff(
            id=head.text("id") or "",
            version=0 if version is None else version,
            effective_from=effective_from or datetime(1970, 1, 1, tzinfo=UTC),
            currency=currency,
            timezone=head.text("timezone") or "UTC",
            fare_day_start=head.time("fare_day_start", 3 * 3600),
            priority_semantics=semantics != "exclusive",
            alternatives=head.flag("alternatives", default=False),
            rider_categories=tuple(categories),
            fare_media=tuple(_media(root)),
            products=tuple(products),
            networks=tuple(networks),
            areas=tuple(areas),
            routes=tuple(routes),
            stops=tuple(stops),
            timeframes=tuple(_timeframes(root)),
            leg_rules=tuple(_leg_rules(root)),
            join_rules=tuple(_join_rules(root)),
            transfer_rules=tuple(_transfer_rules(root)),
            caps=tuple(_caps(root, currency)),
            passes=tuple(_passes(root, currency)),
            max_fares=tuple(_max_fares(root)),
        )
    except InvalidTariffError as error:
        raise InvalidTariffError([*problems.found, *error.problems]) from None
    if problems.found:
        raise InvalidTariffError(problems.found)
    return tariff


def _categories(root: Table) -> tuple[list[RiderCategory], dict[str, int]]:
    categories: list[RiderCategory] = []
    discounts: dict[str, int] = {}
    for table in root.tables("rider_categories", CATEGORY):
        ident, name = table.text("id") or "", table.text("name", required=False)
        percent = table.integer("discount_percent", required=False)
        if percent is not None and not 0 <= percent <= 100:
            table.problems.add(f"{table.path}.discount_percent", "must be 0 to 100")
        elif percent is not None:
            discounts[ident] = percent
        default = table.flag("default", default=False)
        made = table.problems.build(table.path, RiderCategory, ident, name or ident, default)
        if made is not None:
            categories.append(made)
    return categories, discounts


def _media(root: Table) -> list[FareMedia]:
    media = []
    for table in root.tables("fare_media", MEDIA):
        ident, name = table.text("id"), table.text("name", required=False)
        kind = _choice(table, "type", FareMediaType)
        if ident is not None and kind is not None:
            media.append(FareMedia(ident, name or ident, kind))
    return media


def _places(root: Table) -> tuple[list[str], list[str], list[Route], list[Stop]]:
    """Networks, areas, and the routes and stops they group (each table read once)."""
    networks: list[str] = []
    routes: list[Route] = []
    for table in root.tables("networks", GROUP):
        ident = table.text("id")
        table.text("name", required=False)
        networks.append(ident or "")
        routes += [Route(route, ident) for route in table.texts("routes") if ident]
    areas: list[str] = []
    stop_areas: dict[str, set[str]] = {stop: set() for stop in root.texts("stops")}
    for table in root.tables("areas", GROUP):
        ident = table.text("id")
        table.text("name", required=False)
        areas.append(ident or "")
        for stop in table.texts("stops"):
            stop_areas.setdefault(stop, set()).update([ident] if ident else [])
    stations: dict[str, str] = {}
    for table in root.tables("stations", GROUP):
        ident = table.text("id")
        if ident is not None:
            stop_areas.setdefault(ident, set())
            for stop in table.texts("stops"):
                stations[stop] = ident
                stop_areas.setdefault(stop, set())
    stops = [Stop(stop, frozenset(zones), stations.get(stop)) for stop, zones in stop_areas.items()]
    return networks, areas, routes, stops


def _timeframes(root: Table) -> list[Timeframe]:
    frames = []
    for table in root.tables("timeframes", TIMEFRAME):
        days = table.texts("days")
        bad = [day for day in days if day not in WEEKDAYS]
        if bad:
            table.problems.add(f"{table.path}.days", f"{bad} not among {', '.join(WEEKDAYS)}")
        dates: set[date] = set()
        for text in table.texts("dates"):
            try:
                dates.add(date.fromisoformat(text))
            except ValueError:
                table.problems.add(f"{table.path}.dates", f"{text!r} is not YYYY-MM-DD")
        weekdays = frozenset(WEEKDAYS.index(day) for day in days if day in WEEKDAYS)
        if "days" not in table.values and "dates" not in table.values:
            weekdays = frozenset(range(7))
        made = table.problems.build(
            table.path,
            Timeframe,
            table.text("id") or "",
            table.time("start", 0),
            table.time("end", DAY),
            weekdays,
            frozenset(dates),
        )
        if made is not None:
            frames.append(made)
    return frames


def _product(
    table: Table, currency: str, discounts: Mapping[str, int], increment: int, mode: RoundingMode
) -> FareProduct | None:
    """A product: its base amount, explicit prices, and prices discounted by category."""
    prices: list[Price] = []
    base = table.money("amount", currency, required=False)
    for row in table.tables("prices", PRICE):
        amount = row.money("amount", currency)
        category = row.text("rider_category", required=False)
        media = row.text("fare_media", required=False)
        if amount is not None:
            prices.append(Price(amount, category, media))
    if base is not None:
        explicit = {(p.rider_category_id, p.fare_media_id) for p in prices}
        prices.insert(0, Price(base))
        for category, percent in discounts.items():
            if (category, None) not in explicit:
                cut = discounted(base, percent, increment, mode)
                prices.append(Price(cut, category))
    ident, name = table.text("id") or "", table.text("name", required=False)
    return table.problems.build(table.path, FareProduct, ident, name or ident, tuple(prices))


def _leg_rules(root: Table) -> list[LegRule]:
    rules = []
    for table in root.tables("leg_rules", LEG_RULE):
        made = table.problems.build(
            table.path,
            LegRule,
            table.text("product") or "",
            leg_group_id=table.text("leg_group", required=False),
            network_id=table.text("network", required=False),
            from_area_id=table.text("from_area", required=False),
            to_area_id=table.text("to_area", required=False),
            from_timeframe_group_id=table.text("from_timeframe", required=False),
            to_timeframe_group_id=table.text("to_timeframe", required=False),
            priority=table.integer("priority", required=False) or 0,
        )
        if made is not None:
            rules.append(made)
    return rules


def _join_rules(root: Table) -> list[JoinRule]:
    rules = []
    for table in root.tables("join_rules", JOIN_RULE):
        made = table.problems.build(
            table.path,
            JoinRule,
            table.text("from_network") or "",
            table.text("to_network") or "",
            table.text("from_stop", required=False),
            table.text("to_stop", required=False),
        )
        if made is not None:
            rules.append(made)
    return rules


def _transfer_rules(root: Table) -> list[TransferRule]:
    rules = []
    for table in root.tables("transfer_rules", TRANSFER_RULE):
        kind = _choice(table, "fare_transfer_type", FareTransferType)
        made = table.problems.build(
            table.path,
            TransferRule,
            kind if kind is not None else FareTransferType.A_PLUS_AB,
            table.text("from_leg_group", required=False),
            table.text("to_leg_group", required=False),
            table.integer("transfer_count", required=False),
            table.integer("duration_limit", required=False),
            _choice(table, "duration_limit_type", DurationLimitType, required=False),
            table.text("product", required=False),
        )
        if made is not None and kind is not None:
            rules.append(made)
    return rules


def _caps(root: Table, currency: str) -> list[Cap]:
    caps = []
    for table in root.tables("caps", CAP):
        ident, amount = table.text("id"), table.money("amount", currency)
        period = _choice(table, "period", CapPeriod)
        categories, networks = table.texts("rider_categories"), table.texts("networks")
        if ident is not None and period is not None and amount is not None:
            made = table.problems.build(
                table.path, Cap, ident, period, amount, frozenset(categories), frozenset(networks)
            )
            if made is not None:
                caps.append(made)
    return caps


def _passes(root: Table, currency: str) -> list[Pass]:
    passes = []
    for table in root.tables("passes", PASS):
        ident, name = table.text("id"), table.text("name", required=False)
        price = table.money("price", currency)
        days, rides = table.integer("days", required=False), table.integer("rides", required=False)
        networks = frozenset(table.texts("networks"))
        if ident is not None and price is not None:
            made = table.problems.build(
                table.path, Pass, ident, name or ident, price, days, rides, networks
            )
            if made is not None:
                passes.append(made)
    return passes


def _max_fares(root: Table) -> list[MaxFare]:
    maxima = []
    for table in root.tables("max_fares", MAX_FARE):
        network, product = table.text("network"), table.text("product")
        if network is not None and product is not None:
            made = table.problems.build(table.path, MaxFare, network, product)
            if made is not None:
                maxima.append(made)
    return maxima
