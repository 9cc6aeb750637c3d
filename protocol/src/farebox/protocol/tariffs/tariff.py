"""A whole tariff: its parts, checked together, with the indexes the engine reads.

Constructing a `Tariff` checks every cross-reference and lists every problem in one
InvalidTariffError, so an operator fixes a bad file in one pass. The indexes are built
once here so that quoting a tap is a handful of dictionary look-ups.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.tariffs.errors import InvalidTariffError, UnknownRiderError
from farebox.protocol.tariffs.model import (
    Cap,
    FareMedia,
    FareProduct,
    JoinRule,
    LegRule,
    MaxFare,
    Pass,
    RiderCategory,
    Route,
    Stop,
    TransferRule,
)
from farebox.protocol.tariffs.timeframes import DAY, Timeframe
from farebox.protocol.tariffs.zones import zone
from farebox.protocol.wire import INT64_MAX, INT64_MIN

PriceKey = tuple[str | None, str | None]


def _duplicates(ids: Iterable[str], what: str) -> Iterator[str]:
    for value, count in sorted(Counter(ids).items()):
        if count > 1:
            yield f"{what} {value!r} is defined {count} times"


def _group_matches(wanted: str | None, group: str, listed: frozenset[str]) -> bool:
    """GTFS transfer rule groups: an empty group stands for every group no rule lists."""
    return group == wanted if wanted is not None else group not in listed


def _unknown(value: str | None, known: Iterable[str], where: str, what: str) -> Iterator[str]:
    if value is not None and value not in known:
        yield f"{where}: unknown {what} {value!r}"


@dataclass(frozen=True, slots=True)
class Tariff:
    """A versioned tariff set, in force from `effective_from`, in one currency and zone.

    `priority_semantics` is GTFS's switch on the `rule_priority` column: when True an empty
    rule field matches any value; when False it matches only values no rule lists.
    `alternatives` allows rules that match the same legs at the same priority (GTFS lets a
    rider choose between products; the engine charges the cheapest); a native tariff says
    False, and such rules are then refused as overlapping.
    """

    id: str
    version: int
    effective_from: datetime
    currency: str
    timezone: str
    fare_day_start: int = 3 * 3600
    priority_semantics: bool = True
    alternatives: bool = False
    rider_categories: tuple[RiderCategory, ...] = ()
    fare_media: tuple[FareMedia, ...] = ()
    products: tuple[FareProduct, ...] = ()
    networks: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    stops: tuple[Stop, ...] = ()
    timeframes: tuple[Timeframe, ...] = ()
    leg_rules: tuple[LegRule, ...] = ()
    join_rules: tuple[JoinRule, ...] = ()
    transfer_rules: tuple[TransferRule, ...] = ()
    caps: tuple[Cap, ...] = ()
    passes: tuple[Pass, ...] = ()
    max_fares: tuple[MaxFare, ...] = ()

    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    default_category: str | None = field(init=False, repr=False, compare=False)
    category_ids: frozenset[str] = field(init=False, repr=False, compare=False)
    media_ids: frozenset[str] = field(init=False, repr=False, compare=False)
    route_network: dict[str, str | None] = field(init=False, repr=False, compare=False)
    stop_index: dict[str, Stop] = field(init=False, repr=False, compare=False)
    timeframe_groups: dict[str, tuple[Timeframe, ...]] = field(
        init=False, repr=False, compare=False
    )
    prices: dict[str, dict[PriceKey, Money]] = field(init=False, repr=False, compare=False)
    listed: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    max_fare_index: dict[str, str] = field(init=False, repr=False, compare=False)
    pass_index: dict[str, Pass] = field(init=False, repr=False, compare=False)
    rules_by_network: dict[str | None, tuple[tuple[int, LegRule], ...]] = field(
        init=False, repr=False, compare=False
    )
    transfers_between: dict[tuple[str, str], tuple[tuple[int, TransferRule], ...]] = field(
        init=False, repr=False, compare=False
    )
    caps_for: dict[tuple[str | None, str | None], tuple[int, ...]] = field(
        init=False, repr=False, compare=False
    )
    _amounts: dict[int, Money] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise InvalidTariffError(problems)
        set_ = object.__setattr__  # frozen: the indexes are set once, here
        set_(self, "zone", zone(self.timezone))
        defaults = [c.id for c in self.rider_categories if c.is_default]
        set_(self, "default_category", defaults[0] if defaults else None)
        set_(self, "category_ids", frozenset(c.id for c in self.rider_categories))
        set_(self, "media_ids", frozenset(m.id for m in self.fare_media))
        set_(self, "route_network", {r.id: r.network_id for r in self.routes})
        set_(self, "stop_index", {s.id: s for s in self.stops})
        groups: dict[str, list[Timeframe]] = {}
        for frame in self.timeframes:
            groups.setdefault(frame.group_id, []).append(frame)
        set_(self, "timeframe_groups", {k: tuple(v) for k, v in groups.items()})
        set_(
            self,
            "prices",
            {
                p.id: {(x.rider_category_id, x.fare_media_id): x.amount for x in p.prices}
                for p in self.products
            },
        )
        rules = self.leg_rules
        set_(
            self,
            "listed",
            {
                "network": frozenset(r.network_id for r in rules if r.network_id),
                "from_area": frozenset(r.from_area_id for r in rules if r.from_area_id),
                "to_area": frozenset(r.to_area_id for r in rules if r.to_area_id),
                "from_group": frozenset(
                    t.from_leg_group_id for t in self.transfer_rules if t.from_leg_group_id
                ),
                "to_group": frozenset(
                    t.to_leg_group_id for t in self.transfer_rules if t.to_leg_group_id
                ),
            },
        )
        set_(self, "max_fare_index", {m.network_id: m.fare_product_id for m in self.max_fares})
        set_(self, "pass_index", {p.id: p for p in self.passes})
        # a leg can only match rules of its own network or of none: index them so
        by_network: dict[str | None, list[tuple[int, LegRule]]] = {None: []}
        for index, rule in enumerate(rules):
            if rule.network_id is None:
                for entries in by_network.values():
                    entries.append((index, rule))
            else:
                entries = by_network.setdefault(
                    rule.network_id, [e for e in by_network[None] if e[1].network_id is None]
                )
                entries.append((index, rule))
        set_(
            self,
            "rules_by_network",
            {
                k: tuple(sorted(v, key=lambda e: (-e[1].priority, e[0])))
                for k, v in by_network.items()
            },
        )
        groups_of = sorted({r.leg_group_id for r in rules if r.leg_group_id})
        set_(
            self,
            "transfers_between",
            {
                (before, after): tuple(
                    (i, t)
                    for i, t in enumerate(self.transfer_rules)
                    if _group_matches(t.from_leg_group_id, before, self.listed["from_group"])
                    and _group_matches(t.to_leg_group_id, after, self.listed["to_group"])
                )
                for before in groups_of
                for after in groups_of
            },
        )
        set_(
            self,
            "caps_for",
            {
                (category, network): tuple(
                    i for i, cap in enumerate(self.caps) if cap.applies(category, network)
                )
                for category in [None, *(c.id for c in self.rider_categories)]
                for network in [None, *self.networks]
            },
        )
        set_(self, "_amounts", {})

    def amount(self, minor: int) -> Money:
        """`minor` units of the tariff's currency; the engine reuses the few it meets."""
        known = self._amounts.get(minor)
        if known is None:
            known = Money(minor, self.currency)
            if len(self._amounts) < 4096:  # a memo of the common fares, not a growing store
                self._amounts[minor] = known
        return known

    def summary(self) -> dict[str, object]:
        """What `tariff check` prints: the header and how many of each part there are."""
        return {
            "id": self.id,
            "version": self.version,
            "effective_from": self.effective_from.isoformat(),
            "currency": self.currency,
            "timezone": self.timezone,
            "counts": {
                name: len(getattr(self, name))
                for name in (
                    "rider_categories",
                    "fare_media",
                    "products",
                    "networks",
                    "areas",
                    "routes",
                    "stops",
                    "timeframes",
                    "leg_rules",
                    "join_rules",
                    "transfer_rules",
                    "caps",
                    "passes",
                    "max_fares",
                )
            },
        }

    def check_rider(self, category: str | None, media: str | None) -> None:
        """Refuse a category or fare media the tariff does not define (None is always known)."""
        if category is not None and category not in self.category_ids:
            raise UnknownRiderError("rider_category_id", category)
        if media is not None and media not in self.media_ids:
            raise UnknownRiderError("fare_media_id", media)

    def price(self, product_id: str, category: str | None, media: str | None) -> Money | None:
        """What `product_id` costs this rider, or None if it is not sold to them.

        The most specific price wins: category and media, then category on any media, then
        any category on the media, then any category on any media. A rider whose media is
        unknown pays the media-independent price if there is one, else the cheapest.
        """
        table = self.prices[product_id]
        category = category or self.default_category
        for key in ((category, media), (category, None), (None, media), (None, None)):
            if key in table:
                return table[key]
        if media is None:
            for wanted in (category, None):
                offers = [amount for (c, _), amount in table.items() if c == wanted]
                if offers:
                    return min(offers, key=lambda amount: amount.minor)
        return None

    def _problems(self) -> Iterator[str]:
        yield from self._check_header()
        yield from self._check_sizes()
        yield from _duplicates((c.id for c in self.rider_categories), "rider category")
        yield from _duplicates((m.id for m in self.fare_media), "fare media")
        yield from _duplicates((p.id for p in self.products), "fare product")
        yield from _duplicates(self.networks, "network")
        yield from _duplicates(self.areas, "area")
        yield from _duplicates((r.id for r in self.routes), "route")
        yield from _duplicates((s.id for s in self.stops), "stop")
        yield from _duplicates((c.id for c in self.caps), "cap")
        yield from _duplicates((p.id for p in self.passes), "pass")
        yield from _duplicates((m.network_id for m in self.max_fares), "max fare network")
        yield from self._check_categories_and_prices()
        yield from self._check_places()
        yield from self._check_leg_rules()
        yield from self._check_transfers_and_extensions()

    def _check_header(self) -> Iterator[str]:
        if not self.id:
            yield "tariff id is empty"
        if type(self.version) is not int or not 0 <= self.version <= INT64_MAX:
            yield f"tariff version must be a whole number from 0 to 2**63-1, got {self.version!r}"
        if self.effective_from.tzinfo is None:
            yield "effective_from must carry a UTC offset"
        try:
            zone(self.timezone)
        except InvalidValueError as error:
            yield str(error)
        if not 0 <= self.fare_day_start < DAY:
            yield "fare_day_start must be between 00:00 and 23:59:59"

    def _check_sizes(self) -> Iterator[str]:
        """Every amount and count fits in 64 signed bits, as tariff packages and journal
        records (a fare) carry them and the stores keep them."""
        numbers: list[tuple[str, int | None]] = [
            (f"fare product {p.id!r} price", x.amount.minor)
            for p in self.products
            for x in p.prices
        ]
        numbers += [(f"cap {c.id!r} amount", c.amount.minor) for c in self.caps]
        numbers += [(f"leg rule {i} priority", r.priority) for i, r in enumerate(self.leg_rules, 1)]
        for i, t in enumerate(self.transfer_rules, 1):
            numbers += [(f"transfer rule {i} transfer_count", t.transfer_count)]
            numbers += [(f"transfer rule {i} duration_limit", t.duration_limit)]
        for p in self.passes:
            numbers += [
                (f"pass {p.id!r} {k}", v)
                for k, v in (("price", p.price.minor), ("days", p.days), ("rides", p.rides))
            ]
        for where, value in numbers:
            if value is not None and not INT64_MIN <= value <= INT64_MAX:
                yield f"{where} {value} does not fit in 64 signed bits (amounts in minor units)"

    def _check_categories_and_prices(self) -> Iterator[str]:
        categories = {c.id for c in self.rider_categories}
        defaults = [c.id for c in self.rider_categories if c.is_default]
        if self.rider_categories and len(defaults) != 1:
            yield f"exactly one rider category must be the default, found {len(defaults)}"
        media = {m.id for m in self.fare_media}
        for product in self.products:
            where = f"fare product {product.id!r}"
            keyed = {p.rider_category_id for p in product.prices}
            if None not in keyed and defaults and defaults[0] not in keyed:
                yield f"{where}: no price for the default rider category {defaults[0]!r}"
            for price in product.prices:
                if price.amount.currency != self.currency:
                    yield f"{where}: price in {price.amount.currency}, tariff in {self.currency}"
                yield from _unknown(price.rider_category_id, categories, where, "rider category")
                yield from _unknown(price.fare_media_id, media, where, "fare media")

    def _check_places(self) -> Iterator[str]:
        stops = {s.id for s in self.stops}
        for route in self.routes:
            yield from _unknown(route.network_id, self.networks, f"route {route.id!r}", "network")
        for stop in self.stops:
            where = f"stop {stop.id!r}"
            for area in sorted(stop.area_ids):
                yield from _unknown(area, self.areas, where, "area")
            yield from _unknown(stop.parent_station, stops, where, "parent station")
        for index, join in enumerate(self.join_rules):
            where = f"join rule {index + 1}"
            yield from _unknown(join.from_network_id, self.networks, where, "network")
            yield from _unknown(join.to_network_id, self.networks, where, "network")
            yield from _unknown(join.from_stop_id, stops, where, "stop")
            yield from _unknown(join.to_stop_id, stops, where, "stop")

    def _check_leg_rules(self) -> Iterator[str]:
        groups = {t.group_id for t in self.timeframes}
        products = {p.id: p for p in self.products}
        first_of: dict[tuple[object, ...], int] = {}
        for index, rule in enumerate(self.leg_rules):
            where = f"leg rule {index + 1}"
            yield from _unknown(rule.network_id, self.networks, where, "network")
            yield from _unknown(rule.from_area_id, self.areas, where, "area")
            yield from _unknown(rule.to_area_id, self.areas, where, "area")
            yield from _unknown(rule.from_timeframe_group_id, groups, where, "timeframe")
            yield from _unknown(rule.to_timeframe_group_id, groups, where, "timeframe")
            product = products.get(rule.fare_product_id)
            if product is None:
                yield f"{where}: unknown fare product {rule.fare_product_id!r}"
            elif any(p.amount.minor < 0 for p in product.prices):
                yield f"{where}: fare product {product.id!r} has a negative price for a leg"
            key = (*rule.match_key, rule.priority)
            if key in first_of and not self.alternatives:
                yield (
                    f"{where} overlaps leg rule {first_of[key] + 1}: both match the same legs "
                    "at the same priority; give one a higher priority"
                )
            first_of.setdefault(key, index)

    def _check_transfers_and_extensions(self) -> Iterator[str]:
        leg_groups = {r.leg_group_id for r in self.leg_rules if r.leg_group_id}
        products = {p.id for p in self.products}
        for index, rule in enumerate(self.transfer_rules):
            where = f"transfer rule {index + 1}"
            yield from _unknown(rule.from_leg_group_id, leg_groups, where, "leg group")
            yield from _unknown(rule.to_leg_group_id, leg_groups, where, "leg group")
            yield from _unknown(rule.fare_product_id, products, where, "fare product")
        categories = {c.id for c in self.rider_categories}
        for cap in self.caps:
            where = f"cap {cap.id!r}"
            if cap.amount.currency != self.currency:
                yield f"{where}: amount in {cap.amount.currency}, tariff in {self.currency}"
            for category in sorted(cap.rider_category_ids):
                yield from _unknown(category, categories, where, "rider category")
            for network in sorted(cap.network_ids):
                yield from _unknown(network, self.networks, where, "network")
        for held in self.passes:
            where = f"pass {held.id!r}"
            if held.price.currency != self.currency:
                yield f"{where}: price in {held.price.currency}, tariff in {self.currency}"
            for network in sorted(held.network_ids):
                yield from _unknown(network, self.networks, where, "network")
        for maximum in self.max_fares:
            where = f"max fare on {maximum.network_id!r}"
            yield from _unknown(maximum.network_id, self.networks, where, "network")
            yield from _unknown(maximum.fare_product_id, products, where, "fare product")


def in_force(tariffs: Iterable[Tariff], moment: datetime) -> Tariff | None:
    """The tariff in force at `moment`: the latest effective_from not after it, then the
    highest version, then the last of `tariffs` (given oldest first, as published: a
    tariff published again with the same start and version, such as a corrected GTFS feed,
    whose version is always 0, replaces the earlier one)."""
    started = [t for t in tariffs if t.effective_from <= moment]
    # max() keeps the first of equals: reversed, that is the last one given.
    return max(reversed(started), key=lambda t: (t.effective_from, t.version), default=None)
