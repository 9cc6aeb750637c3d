"""Timeframes: times of day on a set of days, matched against a local event time.

A timeframe is GTFS's `timeframes.txt` row made self-contained: `start` and `end` are
seconds after local midnight (end excluded) and the days are weekdays (0 = Monday) and/or
explicit dates (a GTFS `service_id` expanded through its calendar). GTFS caps `end` at
24:00:00; our native format allows up to 48:00:00 so that one row says "Friday 22:00 to
Saturday 02:00": an event in the small hours then matches the timeframe of the day
before, which is how a night service that runs past midnight is priced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from farebox.protocol.errors import InvalidValueError

DAY = 86_400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# ASCII digits only, as in amounts: `\d` would also take Arabic-Indic or full-width digits
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")


def parse_time(text: str) -> int:
    """Read "H:MM", "HH:MM" or "HH:MM:SS" as seconds after midnight (may pass 24:00)."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise InvalidValueError(f"time {text!r} is not HH:MM or HH:MM:SS")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    if minutes > 59 or seconds > 59:
        raise InvalidValueError(f"time {text!r} has minutes or seconds past 59")
    return hours * 3600 + minutes * 60 + seconds


def format_time(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass(frozen=True, slots=True)
class Timeframe:
    """One interval of a timeframe group; a group matches if any of its intervals does."""

    group_id: str
    start: int
    end: int
    weekdays: frozenset[int] = frozenset()
    dates: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not self.group_id:
            raise InvalidValueError("timeframe: group id is empty")
        if not 0 <= self.start < DAY:
            raise InvalidValueError(f"timeframe {self.group_id}: start must be before 24:00")
        if not self.start < self.end <= 2 * DAY:
            raise InvalidValueError(
                f"timeframe {self.group_id}: end must be after start and at most 48:00"
            )
        if not self.weekdays <= frozenset(range(7)):
            raise InvalidValueError(f"timeframe {self.group_id}: weekdays are 0 (Mon) to 6")
        if not self.weekdays and not self.dates:
            raise InvalidValueError(f"timeframe {self.group_id}: applies on no day")

    def _on(self, day: date) -> bool:
        return day.weekday() in self.weekdays or day in self.dates

    def contains(self, local: datetime) -> bool:
        """Whether the local wall-clock time `local` falls in this interval."""
        day = local.date()
        second = local.hour * 3600 + local.minute * 60 + local.second
        if self.start <= second < self.end and self._on(day):
            return True
        # an interval that runs past midnight covers the small hours of the next day
        return (
            self.end > DAY
            and self.start <= second + DAY < self.end
            and self._on(day - timedelta(days=1))
        )
