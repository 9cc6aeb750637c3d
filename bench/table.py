"""Print benchmark results as a Markdown table: the figure, its ceiling, and their ratio.

Every benchmark in farebox measures its ceiling in the same run (for example the bare
storage write of the same rows, or a bare hash), so that the ratio survives a noisy or
slower machine. A target from ARCHITECTURE section 11 is printed beside the figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    what: str
    figure: float
    unit: str
    ceiling: float
    target: str

    @property
    def ratio(self) -> float:
        return self.figure / self.ceiling if self.ceiling else float("nan")


def per_second(action: Callable[[], object], count: int) -> float:
    """Run `action` `count` times and return how many runs a second that makes."""
    start = time.perf_counter()
    for _ in range(count):
        action()
    return count / (time.perf_counter() - start)


def microseconds_each(action: Callable[[], object], count: int) -> float:
    """Run `action` `count` times and return the mean time of one run in microseconds."""
    return 1e6 / per_second(action, count)


def render(title: str, rows: list[Row]) -> str:
    lines = [
        f"### {title}",
        "",
        "| what | figure | ceiling (same run) | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r.what} | {r.figure:,.1f} {r.unit} | {r.ceiling:,.1f} {r.unit} | {r.ratio:.2f} "
        f"| {r.target} |"
        for r in rows
    ]
    return "\n".join(lines)
