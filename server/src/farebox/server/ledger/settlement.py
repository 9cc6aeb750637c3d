"""Fare-day settlement: re-rate a rider's whole day and post the difference.

Validators charge provisional fares from what they know. When a rider's fare day closes,
and again whenever a late tap lands in a closed day, the server re-rates every tap of the
day with the tariff engine (the authority) and posts, per carrier revenue account, the
difference between what the day should cost and what it has cost so far. The transfers
are keyed by (account, fare day, revision, revenue account): a second settlement of the
same revision with the same inputs is a no-op, and a revision computed from other inputs
is a conflict, never a second charge.

The rater is behind a narrow interface (`Rater`), so the ledger does not depend on how
fares are computed; `FlatFareRater` is the simplest useful one (flat fare, free
transfers within a window, a daily cap). A rater that cannot price a day raises
`UnratableDayError`, which `Ledger.settle_due` turns into a parked day (`parking`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from farebox.protocol.money import Money
from farebox.server.errors import LedgerError
from farebox.server.ledger.transfers import Transfer, TransferKind


class UnratableDayError(LedgerError):
    """A rater cannot price a rider's day (no tariff in force at a tap, no rule for a leg,
    a rider category the tariff lacks); the message says why. Nothing is posted."""


@dataclass(frozen=True, slots=True)
class DayTap:
    """One completed tap of a rider's fare day, with what it has been charged so far."""

    key: str
    time_ms: int
    revenue: str
    """The carrier revenue account the tap's fare went to (carrier and route)."""
    route: str
    charged: Money
    stop: str | None = None
    category: str | None = None


class Rater(Protocol):
    """The authority on fares: the amount each tap of one rider's day should cost."""

    def __call__(self, account: str, day: date, taps: Sequence[DayTap]) -> Sequence[Money]:
        """Authoritative amounts, one per tap, in the order given (taps come in time order).

        Raises UnratableDayError for a day it cannot price.
        """
        ...


@dataclass(frozen=True, slots=True)
class FlatFareRater:
    """A flat fare per boarding, free transfers within a window, and an optional daily cap."""

    fare: Money
    transfer_window_ms: int = 0
    daily_cap: Money | None = None

    def __call__(self, account: str, day: date, taps: Sequence[DayTap]) -> Sequence[Money]:
        amounts: list[Money] = []
        spent = Money.zero(self.fare.currency)
        paid_at: int | None = None
        for tap in taps:
            free = paid_at is not None and tap.time_ms - paid_at <= self.transfer_window_ms
            amount = Money.zero(self.fare.currency) if free else self.fare
            if not free:
                paid_at = tap.time_ms
            if self.daily_cap is not None and spent + amount > self.daily_cap:
                amount = max(self.daily_cap - spent, Money.zero(self.fare.currency))
            spent += amount
            amounts.append(amount)
        return amounts


@dataclass(frozen=True, slots=True)
class DayState:
    """What the books say about one rider's fare day before a settlement."""

    account: str
    day: date
    revision: int
    """How many settlements of this day have been recorded."""
    dirty: bool
    """True if the day has fares or reversals its last settlement did not see."""
    fares: int
    """How many fares and fare reversals the day has now."""
    taps: tuple[DayTap, ...]
    charged: Mapping[str, int]
    """Net minor units moved from the rider to each revenue account for this day so far."""


def settlement_transfers(
    state: DayState, rated: Sequence[Money], *, currency: str, time_ms: int
) -> tuple[Transfer, ...]:
    """The adjustments that bring each revenue account's take for the day to the rated amount."""
    if len(rated) != len(state.taps):
        raise ValueError(f"the rater returned {len(rated)} amounts for {len(state.taps)} taps")
    due: dict[str, int] = dict.fromkeys(state.charged, 0)
    for tap, amount in zip(state.taps, rated, strict=True):
        if amount.currency != currency or amount.minor < 0:
            raise ValueError(f"rated amount {amount} for {tap.key} is not a {currency} fare")
        due[tap.revenue] = due.get(tap.revenue, 0) + amount.minor
    revision = state.revision + 1
    transfers = []
    for revenue in sorted(due):
        difference = due[revenue] - state.charged.get(revenue, 0)
        if difference == 0:
            continue
        rider_pays = difference > 0
        transfers.append(
            Transfer(
                key=f"settle:{state.account}:{state.day.isoformat()}:{revision}:{revenue}",
                kind=TransferKind.ADJUSTMENT,
                debit=state.account if rider_pays else revenue,
                credit=revenue if rider_pays else state.account,
                amount=Money(abs(difference), currency),
                event_ms=time_ms,
                reference="fare-day settlement",
                fare_day=state.day,
            )
        )
    return tuple(transfers)
