"""Reading GTFS text files (CSV with a header row) that the caller has already loaded.

The import takes the feed as a mapping of file name to text, so that the engine's package
stays free of file access; the caller reads a feed directory or zip. Values are stripped
and an empty value is None, the way GTFS treats an empty field.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from farebox.protocol.tariffs.document import Problems


@dataclass(frozen=True, slots=True)
class Row:
    """One record of a GTFS file, with its file and line for problem messages."""

    where: str
    values: Mapping[str, str]

    def get(self, field: str) -> str | None:
        value = self.values.get(field, "").strip()
        return value or None

    def need(self, field: str, problems: Problems) -> str:
        value = self.get(field)
        if value is None:
            problems.add(self.where, f"{field} is required")
            return ""
        return value

    def integer(self, field: str, problems: Problems) -> int | None:
        value = self.get(field)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            problems.add(self.where, f"{field} {value!r} is not an integer")
            return None


@dataclass(frozen=True, slots=True)
class Feed:
    """The files of a feed by name (for example "fare_leg_rules.txt": its text)."""

    files: Mapping[str, str]

    def has(self, name: str) -> bool:
        return name in self.files

    def columns(self, name: str) -> list[str]:
        text = self.files.get(name, "").lstrip("\ufeff")
        return [column.strip() for column in next(csv.reader(io.StringIO(text)), [])]

    def rows(self, name: str) -> Iterator[Row]:
        text = self.files.get(name, "").lstrip("\ufeff")
        reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
        if reader.fieldnames is not None:
            reader.fieldnames = [column.strip() for column in reader.fieldnames]
        for values in reader:
            yield Row(f"{name}:{reader.line_num}", {k: v or "" for k, v in values.items() if k})


def _gtfs_date(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def service_dates(feed: Feed, wanted: set[str], problems: Problems) -> dict[str, set[date]]:
    """The dates each wanted service runs: calendar.txt, then calendar_dates.txt exceptions."""
    days: dict[str, set[date]] = {service: set() for service in wanted}
    weekdays = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for row in feed.rows("calendar.txt"):
        service = row.get("service_id")
        if service not in days:
            continue
        try:
            start, end = (
                _gtfs_date(row.need("start_date", problems)),
                _gtfs_date(row.need("end_date", problems)),
            )
        except ValueError:
            problems.add(row.where, "start_date and end_date must be YYYYMMDD")
            continue
        running = {index for index, name in enumerate(weekdays) if row.get(name) == "1"}
        day = start
        while day <= end:
            if day.weekday() in running:
                days[service].add(day)
            day += timedelta(days=1)
    for row in feed.rows("calendar_dates.txt"):
        service = row.get("service_id")
        if service not in days:
            continue
        try:
            day = _gtfs_date(row.need("date", problems))
        except ValueError:
            problems.add(row.where, "date must be YYYYMMDD")
            continue
        if row.get("exception_type") == "1":
            days[service].add(day)
        elif row.get("exception_type") == "2":
            days[service].discard(day)
        else:
            problems.add(row.where, "exception_type must be 1 or 2")
    return days
