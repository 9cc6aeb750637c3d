"""Posting rules: pure functions from business events to the transfers they post.

Nothing here touches a store or a clock: each rule takes values and returns `Transfer`
values (or None when the event posts nothing), so the rules are tested as algebra and the
stores only ever write what a rule produced.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from farebox.protocol.frozen import quick_init
from farebox.protocol.money import Money
from farebox.protocol.records import Outcome, Record, Tap
from farebox.server.ledger.accounts import (
    RIDER_PREFIX,
    Account,
    Channel,
    adjustment_account,
    check_name,
    clearing_account,
    revenue_account,
    revenue_id,
    rider_account,
    ticket_liability_account,
    write_off_account,
)
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.transfers import Phase, Transfer, TransferKind

UNROUTED = "unrouted"
"""The route name of revenue from a tap that carried no route."""


@quick_init
@dataclass(frozen=True, slots=True)
class FareTap:
    """An accepted tap as the ledger sees it: who rode, where, when, at what provisional fare."""

    device: str
    seq: int
    token: str
    time_ms: int
    carrier: str
    route: str
    fare: Money
    stop: str | None = None
    category: str | None = None
    prepaid: bool = False
    """A validated prepaid ticket: the fare comes out of the ticket liability account."""

    def __post_init__(self) -> None:
        if not isinstance(self.fare, Money):
            raise TypeError(f"fare must be Money, not {type(self.fare).__name__}")
        for what, name in (("token", self.token), ("carrier", self.carrier), ("route", self.route)):
            check_name(name, what)

    @property
    def key(self) -> str:
        return tap_key(self.device, self.seq)

    @property
    def payer_id(self) -> str:
        if self.prepaid:
            return ticket_liability_account(self.fare.currency).id
        return f"{RIDER_PREFIX}{self.token}"

    @property
    def payee_id(self) -> str:
        return revenue_id(self.carrier, self.route, self.fare.currency)

    def payer(self, rider: Callable[[str, str, str | None], Account]) -> Account:
        """The ticket liability for a prepaid ticket, else the rider account `rider` makes."""
        currency = self.fare.currency
        if self.prepaid:
            return ticket_liability_account(currency)
        return rider(self.token, currency, self.category)

    def payee(self) -> Account:
        return revenue_account(self.carrier, self.route, self.fare.currency)


def fare_accounts(
    taps: Sequence[FareTap],
    rider: Callable[[str, str, str | None], Account],
    skip: Container[str] = frozenset(),
) -> list[Account]:
    """The accounts a batch of taps names (riders made by `rider`), each once, bar `skip`.

    Built once per account, not per tap: a batch has many taps of few accounts.
    """
    accounts: dict[str, Account] = {}
    for tap in taps:
        # Each id is made once per tap: they are properties that build strings.
        payer, payee = tap.payer_id, tap.payee_id
        if payer not in skip and payer not in accounts:
            accounts[payer] = tap.payer(rider)
        if payee not in skip and payee not in accounts:
            accounts[payee] = tap.payee()
    return list(accounts.values())


def tap_key(device: str, seq: int) -> str:
    """The idempotency key of a tap: a device never reuses a seq."""
    return f"tap:{device}:{seq}"


def tap_from_record(record: Record, carrier_of: Callable[[str], str]) -> FareTap | None:
    """The ledger's view of a journal record, or None if it posts nothing (events, denials)."""
    body = record.body
    if not isinstance(body, Tap) or body.outcome is not Outcome.ACCEPT or body.fare is None:
        return None
    route = record.location.route or UNROUTED
    return FareTap(
        device=record.device,
        seq=record.seq,
        token=body.token,
        time_ms=record.time_ms,
        carrier=carrier_of(route),
        route=route,
        fare=body.fare,
        stop=record.location.stop,
        category=body.category,
    )


def fare_transfer(tap: FareTap, policy: FareDayPolicy) -> Transfer:
    """An accepted tap posts its provisional fare from the rider to the carrier's revenue."""
    return Transfer(
        key=tap.key,
        kind=TransferKind.FARE,
        debit=tap.payer_id,
        credit=tap.payee_id,
        amount=tap.fare,
        event_ms=tap.time_ms,
        fare_day=policy.day_of(tap.time_ms),
        device=tap.device,
        seq=tap.seq,
        stop=tap.stop,
        category=tap.category,
    )


def hold_transfer(
    tap: FareTap, policy: FareDayPolicy, *, max_fare: Money, timeout_ms: int
) -> Transfer:
    """A tap-on holds the maximum fare until the tap-off posts the real one, or time runs out."""
    provisional = fare_transfer(tap, policy)
    return Transfer(
        key=provisional.key,
        kind=TransferKind.FARE,
        phase=Phase.PENDING,
        debit=provisional.debit,
        credit=provisional.credit,
        amount=max_fare,
        event_ms=tap.time_ms,
        fare_day=provisional.fare_day,
        device=tap.device,
        seq=tap.seq,
        stop=tap.stop,
        category=tap.category,
        timeout_ms=timeout_ms,
    )


def resolve_transfer(
    pending: Transfer, *, key: str, amount: Money | None, time_ms: int
) -> Transfer:
    """POST `amount` (at most the held amount) of a pending transfer, or VOID it if None."""
    return Transfer(
        key=key,
        kind=pending.kind,
        phase=Phase.VOID if amount is None else Phase.POST,
        debit=pending.debit,
        credit=pending.credit,
        amount=pending.amount if amount is None else amount,
        event_ms=time_ms,
        fare_day=pending.fare_day,
        origin=pending.key,
    )


@dataclass(frozen=True, slots=True)
class TopUp:
    """Money a rider paid through a channel, identified by the channel's own payment id."""

    token: str
    amount: Money
    channel: Channel
    payment_id: str
    time_ms: int


def top_up_transfer(top_up: TopUp) -> Transfer:
    """A top-up moves money from the channel's clearing account to the rider."""
    return Transfer(
        key=f"top_up:{Channel(top_up.channel).value}:{top_up.payment_id}",
        kind=TransferKind.TOP_UP,
        debit=clearing_account(top_up.channel, top_up.amount.currency).id,
        credit=rider_account(top_up.token, top_up.amount.currency).id,
        amount=top_up.amount,
        event_ms=top_up.time_ms,
        reference=top_up.payment_id,
    )


def ticket_sale_transfer(ticket_id: str, amount: Money, channel: Channel, time_ms: int) -> Transfer:
    """An app ticket sale: the channel's money becomes a liability until the ticket is used."""
    return Transfer(
        key=f"ticket:{ticket_id}",
        kind=TransferKind.TOP_UP,
        debit=clearing_account(channel, amount.currency).id,
        credit=ticket_liability_account(amount.currency).id,
        amount=amount,
        event_ms=time_ms,
        reference=ticket_id,
    )


def reversal_transfer(original: Transfer, *, key: str, time_ms: int, reason: str) -> Transfer:
    """Undo a posted transfer by a new one in the other direction; the original stays."""
    if not original.moves():
        raise ValueError(f"transfer {original.key} moved nothing and cannot be reversed")
    return Transfer(
        key=key,
        kind=TransferKind.REVERSAL,
        debit=original.credit,
        credit=original.debit,
        amount=original.amount,
        event_ms=time_ms,
        reference=reason,
        fare_day=original.fare_day,
        origin=original.key,
    )


def adjustment_transfer(
    token: str, amount: Money, *, key: str, time_ms: int, reason: str
) -> Transfer:
    """An operator's correction of a rider balance: positive credits the rider."""
    rider = rider_account(token, amount.currency).id
    house = adjustment_account(amount.currency).id
    return Transfer(
        key=key,
        kind=TransferKind.ADJUSTMENT,
        debit=house if amount.minor > 0 else rider,
        credit=rider if amount.minor > 0 else house,
        amount=Money(abs(amount.minor), amount.currency),
        event_ms=time_ms,
        reference=reason,
    )


def refund_transfer(
    token: str, amount: Money, channel: Channel, *, key: str, time_ms: int
) -> Transfer:
    """Pay a rider's money back out through a channel (to the card it came from, say)."""
    return Transfer(
        key=key,
        kind=TransferKind.REFUND,
        debit=rider_account(token, amount.currency).id,
        credit=clearing_account(channel, amount.currency).id,
        amount=amount,
        event_ms=time_ms,
    )


def write_off_transfer(token: str, debt: Money, *, key: str, time_ms: int, reason: str) -> Transfer:
    """Give up a rider's debt (a negative balance of `-debt`): the write-off account bears it."""
    return Transfer(
        key=key,
        kind=TransferKind.ADJUSTMENT,
        debit=write_off_account(debt.currency).id,
        credit=rider_account(token, debt.currency).id,
        amount=debt,
        event_ms=time_ms,
        reference=reason,
    )
