"""Numbers read from text: ASCII digits alone, within a bound."""

from __future__ import annotations

import pytest

from farebox.protocol.wire import INT64_MAX, whole_number


@pytest.mark.parametrize(
    ("text", "most", "value"),
    [("0", 10, 0), ("10", 10, 10), ("07", 10, 7), (str(INT64_MAX), INT64_MAX, INT64_MAX)],
)
def test_ascii_digits_within_the_bound_are_a_number(text: str, most: int, value: int) -> None:
    assert whole_number(text, most) == value


@pytest.mark.parametrize(
    "text", ["", "11", "007", "-1", "+1", " 1", "1_0", "²", "\u0663", "1.0", "9" * 40]
)
def test_anything_else_is_none(text: str) -> None:
    assert whole_number(text, 10) is None
