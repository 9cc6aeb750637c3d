"""Amounts as people write them ("200", "4.65") and percentage discounts, exactly.

A tariff states prices in major units as decimal text; inside they are integer minor units
(`Money`). A percentage discount is the one place a fare needs rounding, and the rule is
explicit: the discounted amount is `amount * (100 - percent) / 100`, rounded to a multiple
of the tariff's rounding increment (in minor units) by the tariff's rounding mode:

    half_up  to the nearest multiple, a tie away from zero (the default)
    down     toward zero (the rider never pays a fraction of an increment)
    up       away from zero

Negative amounts (transfer credits) round symmetrically with positive ones.
"""

from __future__ import annotations

import re
from enum import StrEnum

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.money import Money, format_major, minor_unit_exponent

# ASCII digits only: `\d` and int() would also take Arabic-Indic or full-width digits
_AMOUNT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


class RoundingMode(StrEnum):
    HALF_UP = "half_up"
    DOWN = "down"
    UP = "up"


def parse_amount(text: str, currency: str) -> Money:
    """Read a decimal amount in major units ("200", "4.65", "-0.50") as exact Money.

    Exactly that text: no surrounding space, no other digits than 0-9, at most the
    currency's decimals (none for JPY, three for KWD).
    """
    match = _AMOUNT.fullmatch(text)
    places = minor_unit_exponent(currency)
    if match is None:
        raise InvalidValueError(f"amount {text!r} is not a decimal number")
    sign, whole, fraction = match.groups()
    fraction = fraction or ""
    if len(fraction.rstrip("0")) > places:
        raise InvalidValueError(f"amount {text!r} has more than {places} decimals for {currency}")
    minor = int(whole) * 10**places + int((fraction + "0" * places)[:places] or "0")
    return Money(-minor if sign else minor, currency)


def format_amount(amount: Money) -> str:
    """Write `amount` as decimal text in major units ("4.65"), the inverse of parse_amount."""
    return format_major(amount)


def discounted(amount: Money, percent: int, increment: int, mode: RoundingMode) -> Money:
    """`amount` less `percent` per cent, rounded to a multiple of `increment` minor units."""
    if not 0 <= percent <= 100:
        raise InvalidValueError(f"discount must be 0 to 100 per cent, got {percent}")
    if increment < 1:
        raise InvalidValueError(f"rounding increment must be positive, got {increment}")
    numerator = abs(amount.minor) * (100 - percent)
    denominator = 100 * increment
    steps, remainder = divmod(numerator, denominator)
    if remainder and (
        mode is RoundingMode.UP or (mode is RoundingMode.HALF_UP and 2 * remainder >= denominator)
    ):
        steps += 1
    minor = steps * increment
    return Money(-minor if amount.minor < 0 else minor, amount.currency)
