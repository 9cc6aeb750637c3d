"""Fare days: the operator's local day, which ends at a boundary such as 03:00.

Capping and transfers are counted per fare day. With a 03:00 boundary in Asia/Almaty, a
ride at 01:30 on the 6th belongs to the fare day of the 5th: the evening's last bus is
part of the evening.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from farebox.server import environment as env
from farebox.server.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class FareDayPolicy:
    """Which fare day an instant belongs to, in `zone` with days starting at `boundary`."""

    zone: ZoneInfo
    boundary: time = time(3, 0)

    @classmethod
    def parse(cls, zone: str, boundary: str) -> FareDayPolicy:
        """Build a policy from a zone name and an `HH:MM` boundary, or raise ConfigurationError."""
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ConfigurationError(f"unknown time zone {zone!r}") from error
        try:
            at = time.fromisoformat(boundary)
        except ValueError as error:
            raise ConfigurationError(f"day boundary must be HH:MM, got {boundary!r}") from error
        return cls(tz, at)

    @property
    def start_s(self) -> int:
        """When a fare day starts, in seconds after local midnight (a tariff's form)."""
        return self.boundary.hour * 3600 + self.boundary.minute * 60

    @classmethod
    def from_environment(cls) -> FareDayPolicy:
        """The operator's policy: FAREBOX_TIMEZONE and FAREBOX_DAY_BOUNDARY."""
        return cls.parse(env.setting(env.FAREBOX_TIMEZONE), env.setting(env.FAREBOX_DAY_BOUNDARY))

    def day_of(self, time_ms: int) -> date:
        """The fare day of an instant given in UTC milliseconds."""
        return _day_of_minute(self.zone, self.boundary, time_ms // 60_000)

    def __post_init__(self) -> None:
        if self.boundary.second or self.boundary.microsecond or self.boundary.tzinfo:
            raise ConfigurationError("the day boundary is a local HH:MM without an offset")

    def closes_at_ms(self, day: date) -> int:
        """The UTC millisecond at which fare day `day` ends (the next day's boundary)."""
        end = datetime.combine(day + timedelta(days=1), self.boundary, self.zone)
        return int(end.astimezone(UTC).timestamp() * 1000)

    def last_closed(self, now_ms: int) -> date:
        """The latest fare day that has ended at `now_ms`."""
        return self.day_of(now_ms) - timedelta(days=1)


@functools.lru_cache(maxsize=4096)
def _day_of_minute(zone: ZoneInfo, boundary: time, minute: int) -> date:
    # Every zone offset in use is a whole number of minutes and the boundary is HH:MM, so
    # all instants of one UTC minute share a fare day; a batch of taps spans few minutes.
    local = datetime.fromtimestamp(minute * 60, zone)
    return (local - timedelta(hours=boundary.hour, minutes=boundary.minute)).date()
