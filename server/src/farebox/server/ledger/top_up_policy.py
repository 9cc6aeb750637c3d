"""What one top-up may credit: the ledger's currency (FAREBOX_CURRENCY), from 1 to a set
number of minor units (FAREBOX_MAX_TOP_UP); checked before anything is posted, by the
operator API and by `farebox-server account topup` alike.

A top-up is the posting whose amount and currency a person or a payment channel types in.
It may open the rider's account, which keeps the currency of its first posting: a top-up
in another currency would open an account on which every fare the validators charge (in
the ledger's currency) is refused, for good. And every top-up through a channel is taken
from the channel's one clearing account, whose balance is a signed 64-bit column: an
amount near that limit, typed by mistake, would fill it, and every later top-up through
the channel would fail. The maximum is a business limit far below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from farebox.protocol.money import Money, check_currency
from farebox.protocol.wire import INT64_MAX, whole_number
from farebox.server import environment as env
from farebox.server.errors import ConfigurationError

MAX_TOP_UP = int(env.DEFAULTS[env.FAREBOX_MAX_TOP_UP])


@dataclass(frozen=True, slots=True)
class TopUpPolicy:
    """A top-up credits from 1 to `maximum` minor units of `currency`, the ledger's."""

    maximum: int = MAX_TOP_UP
    currency: str = env.DEFAULTS[env.FAREBOX_CURRENCY]

    def __post_init__(self) -> None:
        try:
            check_currency(self.currency)
        except ValueError as error:
            raise ConfigurationError(f"{env.FAREBOX_CURRENCY}: {error}") from None
        if type(self.maximum) is not int or not 0 < self.maximum <= INT64_MAX:
            raise ConfigurationError(
                f"{env.FAREBOX_MAX_TOP_UP} is a whole number of minor units from 1 to"
                f" {INT64_MAX}, got {self.maximum!r}"
            )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TopUpPolicy:
        """The policy the environment sets (the process environment by default)."""
        raw = env.setting(env.FAREBOX_MAX_TOP_UP, environ)
        maximum = whole_number(raw, INT64_MAX)
        if maximum is None:
            raise ConfigurationError(f"{env.FAREBOX_MAX_TOP_UP} is a whole number, got {raw!r}")
        return cls(maximum, env.setting(env.FAREBOX_CURRENCY, environ))

    def check(self, amount: Money) -> Money:
        """`amount`, if a top-up may credit it; else ValueError saying what may be."""
        if amount.currency != self.currency:
            raise ValueError(
                f"this ledger keeps {self.currency} ({env.FAREBOX_CURRENCY});"
                f" a top-up in {amount.currency} is refused"
            )
        if not 0 < amount.minor <= self.maximum:
            most = Money(self.maximum, amount.currency)
            raise ValueError(
                f"a top-up credits from 1 minor unit to {most} ({env.FAREBOX_MAX_TOP_UP}),"
                f" not {amount}"
            )
        return amount
