"""Money: an integer number of minor units in one ISO 4217 currency.

There is no float anywhere in farebox's money. Amounts are exact integers of the
currency's minor unit (tiyn for KZT, tyiyn for KGS); a float or a bool is a TypeError at
construction, and amounts of two currencies never meet in one sum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Self

from farebox.protocol.errors import CurrencyMismatchError, InvalidValueError

_CURRENCY = re.compile(r"[A-Z]{3}")
# ISO 4217's own code for "no currency": stands in while a tariff that failed to load is
# checked for its other problems.
NO_CURRENCY = "XXX"

# Every ISO 4217 currency whose minor unit is not a hundredth; any other well-formed code
# has two decimals, as ISO 4217 gives most currencies (KZT, KGS, UZS, TJS, RUB, USD, EUR).
MINOR_UNIT_EXPONENTS = {
    **dict.fromkeys(["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"], 0),
    **dict.fromkeys(["RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"], 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}


def minor_unit_exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit: 2 unless MINOR_UNIT_EXPONENTS says else."""
    return MINOR_UNIT_EXPONENTS.get(currency, 2)


def format_major(amount: Money) -> str:
    """`amount` as decimal text in major units, without the currency ("4.65", "-0.05", "210")."""
    places = minor_unit_exponent(amount.currency)
    whole, fraction = divmod(abs(amount.minor), 10**places)
    sign = "-" if amount.minor < 0 else ""
    return f"{sign}{whole}.{fraction:0{places}d}" if places else f"{sign}{whole}"


def _require_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


def check_currency(code: object) -> str:
    """Return `code` if it is a three-letter upper-case ISO 4217 code."""
    if not isinstance(code, str):
        raise TypeError(f"currency must be a str, not {type(code).__name__}")
    if not _CURRENCY.fullmatch(code):
        raise InvalidValueError(f"currency must be three upper-case letters, got {code!r}")
    return code


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An exact amount: `minor` units of `currency` (e.g. Money(20000, "KZT") is 200 KZT)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        _require_int(self.minor, "Money.minor")
        check_currency(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Self:
        return cls(0, currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"{self.currency} and {other.currency} do not mix")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __mul__(self, factor: int) -> Money:
        return Money(self.minor * _require_int(factor, "factor"), self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.minor >= other.minor

    def __bool__(self) -> bool:
        return self.minor != 0

    def __str__(self) -> str:
        return f"{format_major(self)} {self.currency}"
