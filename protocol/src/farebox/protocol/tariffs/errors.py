"""The errors of the tariff engine, placed in farebox.protocol's error tree.

    InvalidValueError (farebox.protocol.errors)
    ├── InvalidTariffError   a tariff refused at load; `problems` lists every problem found
    └── UnknownRiderError    a rider category or fare media the tariff does not define
    LocalProtocolError (farebox.protocol.errors)
    └── NoFareError          no rule of the tariff prices a leg; `leg_index` names it

A tariff that fails to decode from the wire is a DecodeError (the peer's fault) whose
message carries the same list of problems.
"""

from __future__ import annotations

from collections.abc import Iterable

from farebox.protocol.errors import InvalidValueError, LocalProtocolError


class InvalidTariffError(InvalidValueError):
    """A tariff with one or more problems; all of them are in `problems`."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        listed = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid tariff ({len(self.problems)} problem(s)):\n{listed}")


class NoFareError(LocalProtocolError):
    """No fare leg rule of the tariff matches a leg of the journey."""

    def __init__(self, leg_index: int, detail: str) -> None:
        self.leg_index = leg_index
        super().__init__(f"leg {leg_index}: no fare rule prices this leg ({detail})")


class UnknownRiderError(InvalidValueError):
    """A rider whose category or fare media the tariff does not define.

    Priced anyway, such a rider would match no category's price and no cap: refused, so
    that the caller can turn it into a denial. `field` is "rider_category_id" or
    "fare_media_id", `value` the id given.
    """

    def __init__(self, field: str, value: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field} {value!r} is not defined by the tariff")
