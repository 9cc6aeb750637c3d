"""What one top-up may credit: at most a set amount (FAREBOX_MAX_TOP_UP).

A top-up is the posting whose amount a person or a payment channel types in. Every top-up
of a channel is taken from the channel's one clearing account, whose balance, like every
balance, is a signed 64-bit column: an amount near that limit, typed by mistake, would
fill the account, and every later top-up through the channel would then fail. The
maximum is a business limit far below it, checked before anything is posted, by the
operator API and by `farebox-server account topup` alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from farebox.protocol.money import Money
from farebox.protocol.wire import INT64_MAX
from farebox.server import environment as env
from farebox.server.errors import ConfigurationError

MAX_TOP_UP = int(env.DEFAULTS[env.FAREBOX_MAX_TOP_UP])


@dataclass(frozen=True, slots=True)
class TopUpPolicy:
    """A top-up credits from 1 to `maximum` minor units."""

    maximum: int = MAX_TOP_UP

    def __post_init__(self) -> None:
        if type(self.maximum) is not int or not 0 < self.maximum <= INT64_MAX:
            raise ConfigurationError(
                f"{env.FAREBOX_MAX_TOP_UP} is a whole number of minor units from 1 to"
                f" {INT64_MAX}, got {self.maximum!r}"
            )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TopUpPolicy:
        """The policy the environment sets (the process environment by default)."""
        raw = env.setting(env.FAREBOX_MAX_TOP_UP, environ)
        # ASCII digits only: isdigit() also takes "²", which int() refuses.
        if not (raw.isascii() and raw.isdigit()):
            raise ConfigurationError(f"{env.FAREBOX_MAX_TOP_UP} is a whole number, got {raw!r}")
        return cls(int(raw))

    def check(self, amount: Money) -> Money:
        """`amount`, if a top-up may credit it; else ValueError saying what may be."""
        if not 0 < amount.minor <= self.maximum:
            most = Money(self.maximum, amount.currency)
            raise ValueError(
                f"a top-up credits from 1 minor unit to {most} ({env.FAREBOX_MAX_TOP_UP}),"
                f" not {amount}"
            )
        return amount
