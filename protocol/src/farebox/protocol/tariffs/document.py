"""Strict reading of a tariff document (parsed TOML, JSON or CBOR) that lists all problems.

Unlike a wire message, which is refused at its first fault, a tariff document is read to
the end: every missing field, unknown field and wrong type becomes one line in the list
an operator gets back, each naming where it is (`products[2].amount`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ParamSpec, TypeVar

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.tariffs.amounts import parse_amount
from farebox.protocol.tariffs.timeframes import parse_time

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(slots=True)
class Problems:
    """The problems found so far, in the order they were found."""

    found: list[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.found.append(f"{where}: {message}")

    def build(
        self, where: str, make: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T | None:
        """Call `make`, keeping a validation error as a problem instead of raising it."""
        try:
            return make(*args, **kwargs)
        except InvalidValueError as error:
            self.add(where, str(error))
            return None


@dataclass(slots=True)
class Table:
    """One table of the document, its path, and the problem list it reports to."""

    values: Mapping[str, object]
    path: str
    problems: Problems
    allowed: frozenset[str]

    def __post_init__(self) -> None:
        unknown = sorted(str(k) for k in self.values if k not in self.allowed)
        if unknown:
            self.problems.add(self.path, f"unknown field(s) {', '.join(unknown)}")

    def _get(self, key: str, kinds: tuple[type, ...], label: str, required: bool) -> object:
        if key not in self.values:
            if required:
                self.problems.add(f"{self.path}.{key}", "missing")
            return None
        value = self.values[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            self.problems.add(f"{self.path}.{key}", f"expected {label}, got {value!r}")
            return None
        return value

    def text(self, key: str, *, required: bool = True) -> str | None:
        value = self._get(key, (str,), "a string", required)
        if value == "":
            self.problems.add(f"{self.path}.{key}", "must not be empty")
            return None
        return value if isinstance(value, str) else None

    def integer(self, key: str, *, required: bool = True) -> int | None:
        value = self._get(key, (int,), "a whole number", required)
        return value if isinstance(value, int) else None

    def flag(self, key: str, *, default: bool) -> bool:
        value = self._get(key, (bool,), "true or false", required=False)
        return value if isinstance(value, bool) else default

    def texts(self, key: str) -> list[str]:
        value = self._get(key, (list,), "a list of strings", required=False)
        if not isinstance(value, list):
            return []
        good = [item for item in value if isinstance(item, str) and item]
        if len(good) != len(value):
            self.problems.add(f"{self.path}.{key}", "expected a list of non-empty strings")
        return good

    def raw(self, key: str, *, required: bool = True) -> object:
        if key not in self.values:
            if required:
                self.problems.add(f"{self.path}.{key}", "missing")
            return None
        return self.values[key]

    def tables(self, key: str, allowed: frozenset[str]) -> list[Table]:
        """The list of tables under `key` (an array of tables in TOML)."""
        value = self._get(key, (list,), "a list of tables", required=False)
        if not isinstance(value, list):
            return []
        found = []
        for index, item in enumerate(value):
            where = f"{key}[{index}]" if not self.path else f"{self.path}.{key}[{index}]"
            if isinstance(item, Mapping):
                found.append(Table(item, where, self.problems, allowed))
            else:
                self.problems.add(where, "expected a table")
        return found

    def table(self, key: str, allowed: frozenset[str]) -> Table:
        value = self._get(key, (Mapping,), "a table", required=True)
        where = key if not self.path else f"{self.path}.{key}"
        return Table(value if isinstance(value, Mapping) else {}, where, self.problems, allowed)

    def money(self, key: str, currency: str, *, required: bool = True) -> Money | None:
        """A decimal amount in major units, written as a string (or a whole number)."""
        value = self.raw(key, required=required)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problems.add(f"{self.path}.{key}", f"expected a decimal string, got {value!r}")
            return None
        return self.problems.build(f"{self.path}.{key}", parse_amount, value, currency)

    def time(self, key: str, default: int) -> int:
        text = self.text(key, required=False)
        if text is None:
            return default
        return self.problems.build(f"{self.path}.{key}", parse_time, text) or 0

    def moment(self, key: str) -> datetime | None:
        """A date-time with a UTC offset: a TOML date-time, or ISO 8601 text."""
        value = self.raw(key)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                self.problems.add(f"{self.path}.{key}", f"{value!r} is not an ISO date-time")
                return None
        if value is not None and not isinstance(value, datetime):
            self.problems.add(f"{self.path}.{key}", "expected a date-time with an offset")
            return None
        return value
