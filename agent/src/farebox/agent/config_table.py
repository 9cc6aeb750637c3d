"""Typed reads from one table of the TOML config, noting every problem instead of raising.

The config is checked whole and every problem listed at once (see farebox.agent.config),
so each read returns a usable default after noting what was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

E = TypeVar("E", bound=StrEnum)
MOST = 1e9
"""The largest number a setting takes: 31 years in seconds, a petabyte in MB. Beyond it
a value would overflow the 64-bit times it is turned into."""


class Table:
    """Typed reads from one TOML table; each bad or unknown key is noted, not raised."""

    def __init__(self, data: object, path: str, problems: list[str], known: set[str]) -> None:
        self.path, self.problems = path, problems
        if not isinstance(data, Mapping):
            problems.append(f"[{path}] must be a table")
            data = {}
        self.data: Mapping[str, object] = data
        problems.extend(f"[{path}] unknown key {k!r}" for k in sorted(set(data) - known))

    def _bad(self, key: str, wanted: str) -> None:
        self.problems.append(f"{self.path}.{key} must be {wanted}, got {self.data[key]!r}")

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is not None and (not isinstance(value, str) or not value):
            self._bad(key, "a non-empty string")
            return default
        return value

    def number(self, key: str, default: float, *, least: float = 0) -> float:
        """A number from `least` to MOST (TOML's nan and inf are not numbers here)."""
        value = self.data.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not least <= value <= MOST  # also false for nan
        ):
            self._bad(key, f"a number from {least} to {MOST:.0e}")
            return default
        return float(value)

    def pin(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            self._bad(key, "a GPIO number")
            return None
        return value

    def choice(self, key: str, kind: type[E], default: E) -> E:
        value = self.data.get(key, default.value)
        try:
            return kind(str(value))
        except ValueError:
            self._bad(key, "one of " + ", ".join(m.value for m in kind))
            return default
