"""What the engine prices: a rider (category, media, what they hold) and their legs.

A leg is one ride on one route: the tap-on (route, stop, time) and, on a network with
tap-off, the tap-off (stop, time). A bus validator that sees only the tap-on gives a leg
without `to_stop_id`. Times carry their UTC offset; the engine reads them in the
tariff's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.tariffs.model import require_id


def _require_aware(value: object, what: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidValueError(f"{what} must be a datetime with a UTC offset")


@dataclass(frozen=True, slots=True)
class Leg:
    """One ride; `to_stop_id` None is a tap-on without a tap-off (or a single-tap ride)."""

    route_id: str
    from_stop_id: str
    departure: datetime
    to_stop_id: str | None = None
    arrival: datetime | None = None

    def __post_init__(self) -> None:
        require_id(self.route_id, "leg route")
        require_id(self.from_stop_id, "leg from stop")
        _require_aware(self.departure, "leg departure")
        if self.to_stop_id is not None:
            require_id(self.to_stop_id, "leg to stop")
        if self.arrival is not None:
            _require_aware(self.arrival, "leg arrival")
            if self.arrival < self.departure:
                raise InvalidValueError("leg arrival is before its departure")

    @property
    def end(self) -> datetime:
        """The arrival validation, or the departure when the leg has none."""
        return self.arrival or self.departure


@dataclass(frozen=True, slots=True)
class Holding:
    """A pass the rider holds, valid in a window; for a multi-ride pass, the rides left."""

    pass_id: str
    valid_from: datetime
    valid_until: datetime
    rides: int | None = None

    def __post_init__(self) -> None:
        require_id(self.pass_id, "holding pass")
        _require_aware(self.valid_from, "holding valid_from")
        _require_aware(self.valid_until, "holding valid_until")
        if self.rides is not None and self.rides < 0:
            raise InvalidValueError("holding rides must not be negative")

    def valid_at(self, moment: datetime) -> bool:
        return self.valid_from <= moment < self.valid_until


@dataclass(frozen=True, slots=True)
class Rider:
    """Who rides: None for category or media means the tariff's default / unknown media."""

    rider_category_id: str | None = None
    fare_media_id: str | None = None
    holdings: tuple[Holding, ...] = ()
