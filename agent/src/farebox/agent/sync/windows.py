"""Sync windows: the local times of day when the server can be reached (depot Wi-Fi).

A window `"22:00-06:00"` runs from 22:00 up to, not including, 06:00 and may cross
midnight; `"00:00-24:00"` is the whole day. No windows at all means always. Outside every
window the sync sleeps until the next one opens rather than knocking on a network that is
not there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from farebox.protocol.errors import InvalidValueError

DAY_MINUTES = 24 * 60
_WINDOW = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])", re.ASCII)


@dataclass(frozen=True, slots=True)
class Window:
    """From `start` up to `end`, in minutes after local midnight."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _WINDOW.fullmatch(text)
        if match is None:
            raise InvalidValueError(f"a sync window is 'HH:MM-HH:MM', got {text!r}")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start > DAY_MINUTES or end > DAY_MINUTES or start == end:
            raise InvalidValueError(f"sync window {text!r} is empty or past 24:00")
        return cls(start, end)

    def holds(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


@dataclass(frozen=True, slots=True)
class SyncWindows:
    windows: tuple[Window, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> SyncWindows:
        return cls(tuple(Window.parse(text) for text in texts))

    def open_at(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return not self.windows or any(window.holds(minute) for window in self.windows)

    def seconds_until_open(self, local: datetime) -> float:
        """0 inside a window, else the time until the nearest window opens."""
        if self.open_at(local):
            return 0.0
        now = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return min((w.start * 60 - now) % (DAY_MINUTES * 60) for w in self.windows)
