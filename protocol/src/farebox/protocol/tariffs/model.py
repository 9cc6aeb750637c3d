"""The parts of a tariff: the GTFS-Fares v2 concepts plus our extensions.

Each part is a frozen value that checks its own fields on construction; references
between parts (a rule naming a product, a price naming a rider category) are checked by
`Tariff`, which lists every problem at once. Ids are non-empty strings; an optional id is
None, the way an empty GTFS field is empty.

Extensions to GTFS-Fares v2 (see docs/tariffs.md): `Cap` (daily and weekly fare capping
per rider category), `Pass` (period passes and multi-ride products a rider holds), and
`MaxFare` (the fare charged on a tap-on/tap-off network when the tap-off is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import Money


def require_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _optional_id(value: object, what: str) -> None:
    if value is not None:
        require_id(value, what)


class FareMediaType(IntEnum):
    """GTFS `fare_media_type`."""

    NONE = 0
    PAPER_TICKET = 1
    TRANSIT_CARD = 2
    CEMV = 3
    MOBILE_APP = 4


class DurationLimitType(IntEnum):
    """GTFS `duration_limit_type`: which validations of the sub-journey the limit spans."""

    DEPARTURE_TO_ARRIVAL = 0
    DEPARTURE_TO_DEPARTURE = 1
    ARRIVAL_TO_DEPARTURE = 2
    ARRIVAL_TO_ARRIVAL = 3


class FareTransferType(IntEnum):
    """GTFS `fare_transfer_type`: how a transfer's cost combines with the legs'."""

    A_PLUS_AB = 0
    A_PLUS_AB_PLUS_B = 1
    AB = 2


class CapPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"


@dataclass(frozen=True, slots=True)
class RiderCategory:
    id: str
    name: str
    is_default: bool = False

    def __post_init__(self) -> None:
        require_id(self.id, "rider category id")


@dataclass(frozen=True, slots=True)
class FareMedia:
    id: str
    name: str
    type: FareMediaType

    def __post_init__(self) -> None:
        require_id(self.id, "fare media id")
        FareMediaType(self.type)


@dataclass(frozen=True, slots=True)
class Price:
    """What a product costs a rider category on a fare media; None means any."""

    amount: Money
    rider_category_id: str | None = None
    fare_media_id: str | None = None

    def __post_init__(self) -> None:
        _optional_id(self.rider_category_id, "price rider category")
        _optional_id(self.fare_media_id, "price fare media")


@dataclass(frozen=True, slots=True)
class FareProduct:
    id: str
    name: str
    prices: tuple[Price, ...]

    def __post_init__(self) -> None:
        require_id(self.id, "fare product id")
        if not self.prices:
            raise InvalidValueError(f"fare product {self.id}: has no price")
        keys = [(p.rider_category_id, p.fare_media_id) for p in self.prices]
        if len(set(keys)) != len(keys):
            raise InvalidValueError(f"fare product {self.id}: two prices for one category/media")


@dataclass(frozen=True, slots=True)
class Route:
    id: str
    network_id: str | None = None

    def __post_init__(self) -> None:
        require_id(self.id, "route id")
        _optional_id(self.network_id, f"route {self.id} network")


@dataclass(frozen=True, slots=True)
class Stop:
    """A stop or station, the areas it is in, and its station (for join rules)."""

    id: str
    area_ids: frozenset[str] = frozenset()
    parent_station: str | None = None

    def __post_init__(self) -> None:
        require_id(self.id, "stop id")
        _optional_id(self.parent_station, f"stop {self.id} parent station")


@dataclass(frozen=True, slots=True)
class LegRule:
    """A GTFS fare leg rule: a leg that matches every non-empty field costs the product."""

    fare_product_id: str
    leg_group_id: str | None = None
    network_id: str | None = None
    from_area_id: str | None = None
    to_area_id: str | None = None
    from_timeframe_group_id: str | None = None
    to_timeframe_group_id: str | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        require_id(self.fare_product_id, "leg rule product")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidValueError("leg rule priority must be an integer")
        if self.priority < 0:
            raise InvalidValueError(f"leg rule priority must be >= 0, got {self.priority}")

    @property
    def match_key(self) -> tuple[str | None, ...]:
        return (
            self.network_id,
            self.from_area_id,
            self.to_area_id,
            self.from_timeframe_group_id,
            self.to_timeframe_group_id,
        )


@dataclass(frozen=True, slots=True)
class JoinRule:
    """Two consecutive legs that match are one effective fare leg (GTFS join rules)."""

    from_network_id: str
    to_network_id: str
    from_stop_id: str | None = None
    to_stop_id: str | None = None

    def __post_init__(self) -> None:
        require_id(self.from_network_id, "join rule from network")
        require_id(self.to_network_id, "join rule to network")
        if (self.from_stop_id is None) != (self.to_stop_id is None):
            raise InvalidValueError("join rule: from_stop_id and to_stop_id go together")


@dataclass(frozen=True, slots=True)
class TransferRule:
    """A GTFS fare transfer rule between two leg groups (None: any group not listed)."""

    fare_transfer_type: FareTransferType
    from_leg_group_id: str | None = None
    to_leg_group_id: str | None = None
    transfer_count: int | None = None
    duration_limit: int | None = None
    duration_limit_type: DurationLimitType | None = None
    fare_product_id: str | None = None

    def __post_init__(self) -> None:
        FareTransferType(self.fare_transfer_type)
        same_group = self.from_leg_group_id == self.to_leg_group_id
        if same_group and self.transfer_count is None:
            raise InvalidValueError("transfer rule within one leg group needs a transfer_count")
        if not same_group and self.transfer_count is not None:
            raise InvalidValueError("transfer_count is only for transfers within one leg group")
        if self.transfer_count is not None and (
            self.transfer_count == 0 or self.transfer_count < -1
        ):
            raise InvalidValueError("transfer_count must be -1 (no limit) or 1 or more")
        if self.duration_limit is not None and self.duration_limit <= 0:
            raise InvalidValueError("duration_limit must be a positive number of seconds")
        if (self.duration_limit is None) != (self.duration_limit_type is None):
            raise InvalidValueError("duration_limit and duration_limit_type go together")
        if self.duration_limit_type is not None:
            DurationLimitType(self.duration_limit_type)

    @property
    def count_limit(self) -> float:
        """The transfer count as a number to compare; no limit is infinity."""
        if self.transfer_count is None or self.transfer_count == -1:
            return float("inf")
        return self.transfer_count


@dataclass(frozen=True, slots=True)
class Cap:
    """Extension: what a rider category pays at most per fare day or week."""

    id: str
    period: CapPeriod
    amount: Money
    rider_category_ids: frozenset[str] = frozenset()
    network_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        require_id(self.id, "cap id")
        CapPeriod(self.period)
        if self.amount.minor < 0:
            raise InvalidValueError(f"cap {self.id}: amount must not be negative")

    def applies(self, category: str | None, network: str | None) -> bool:
        return (not self.rider_category_ids or category in self.rider_category_ids) and (
            not self.network_ids or network in self.network_ids
        )


@dataclass(frozen=True, slots=True)
class Pass:
    """Extension: a period pass (`days`) or a multi-ride product (`rides`) a rider can hold."""

    id: str
    name: str
    price: Money
    days: int | None = None
    rides: int | None = None
    network_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        require_id(self.id, "pass id")
        if self.price.minor < 0:
            raise InvalidValueError(f"pass {self.id}: price must not be negative")
        if (self.days is None) == (self.rides is None):
            raise InvalidValueError(f"pass {self.id}: give either days or rides")
        if (self.days or self.rides or 0) < 1:
            raise InvalidValueError(f"pass {self.id}: days or rides must be at least 1")

    def covers(self, network: str | None) -> bool:
        return not self.network_ids or network in self.network_ids


@dataclass(frozen=True, slots=True)
class MaxFare:
    """Extension: a tap-on/tap-off network and the product charged when the tap-off is missing.

    A product rather than an amount, so that the maximum fare follows the rider's category
    (a pensioner who rides free is not charged the adult maximum).
    """

    network_id: str
    fare_product_id: str

    def __post_init__(self) -> None:
        require_id(self.network_id, "max fare network")
        require_id(self.fare_product_id, "max fare product")
