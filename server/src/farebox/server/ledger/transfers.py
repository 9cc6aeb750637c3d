"""Transfers: immutable movements of an exact amount from one account to another.

A transfer debits one account and credits another by the same integer amount, so every
transfer balances by construction. It is never changed: a correction is a new transfer.
Its idempotency key names the business event (a tap is `tap:<device>:<seq>`); a re-sent
request with the same key is told apart from a different request that reuses the key by
its content (writes.post_transfers compares what is stored).

Two-phase transfers follow TigerBeetle's shape: a PENDING transfer holds funds; a later
POST (for at most the held amount) or VOID transfer names it by key in `origin` and
resolves it, once. A REVERSAL names the transfer it reverses in `origin` too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from farebox.protocol.frozen import quick_init
from farebox.protocol.money import Money

_KEY = re.compile(r"[!-~]{1,200}")


class TransferKind(StrEnum):
    FARE = "fare"
    TOP_UP = "top_up"
    ADJUSTMENT = "adjustment"
    REFUND = "refund"
    REVERSAL = "reversal"


class Phase(StrEnum):
    SINGLE = "single"
    """Posted at once."""
    PENDING = "pending"
    """Holds the amount until a POST or VOID resolves it, or its timeout passes."""
    POST = "post"
    """Resolves a pending transfer and moves (at most) its amount."""
    VOID = "void"
    """Resolves a pending transfer and releases its hold; moves nothing."""


@quick_init
@dataclass(frozen=True, slots=True)
class Transfer:
    """One movement of money, as requested; the store adds its id and posting time."""

    key: str
    kind: TransferKind
    debit: str
    credit: str
    amount: Money
    event_ms: int
    phase: Phase = Phase.SINGLE
    reference: str | None = None
    fare_day: date | None = None
    device: str | None = None
    seq: int | None = None
    stop: str | None = None
    category: str | None = None
    origin: str | None = None
    timeout_ms: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _KEY.fullmatch(self.key):
            raise ValueError(f"idempotency key must be 1-200 printable ASCII, got {self.key!r}")
        if not isinstance(self.amount, Money):
            raise TypeError(f"amount must be Money, not {type(self.amount).__name__}")
        if self.debit == self.credit:
            raise ValueError(f"transfer {self.key} debits and credits the same account")
        # A free ride is still a tap the day's re-rating must see; any other movement of
        # nothing is a mistake.
        if self.amount.minor < 0 or (self.amount.minor == 0 and self.kind is not TransferKind.FARE):
            raise ValueError(f"transfer {self.key} amount must be positive, got {self.amount}")
        if (self.device is None) != (self.seq is None):
            raise ValueError("device and seq come together")
        # Text a device or a channel sent: printable, as PostgreSQL's text refuses NUL.
        for what, text in (("reference", self.reference), ("stop", self.stop),
                           ("category", self.category)):  # fmt: skip
            if text is not None and not text.isprintable():
                raise ValueError(f"transfer {self.key}: {what} must be printable, got {text!r}")
        resolves = self.phase in (Phase.POST, Phase.VOID)
        if (resolves or self.kind is TransferKind.REVERSAL) != (self.origin is not None):
            raise ValueError(f"transfer {self.key}: origin names what it resolves or reverses")
        if (self.phase is Phase.PENDING) != (self.timeout_ms is not None):
            raise ValueError(f"transfer {self.key}: a pending transfer, and only it, has a timeout")

    @property
    def currency(self) -> str:
        return self.amount.currency

    def moves(self) -> bool:
        """True if posting this changes posted balances (pendings hold, voids release)."""
        return self.phase in (Phase.SINGLE, Phase.POST)


def origin_problem(transfer: Transfer, origin: Transfer | None) -> str | None:
    """Why `transfer` may not resolve or reverse `origin` (None when it may)."""
    if origin is None:
        return f"{transfer.key}: no transfer {transfer.origin} to resolve or reverse"
    if transfer.currency != origin.currency:
        return f"{transfer.key}: currency differs from {origin.key}"
    if transfer.kind is TransferKind.REVERSAL:
        if not origin.moves():
            return f"{transfer.key}: {origin.key} moved nothing and cannot be reversed"
        if (transfer.debit, transfer.credit) != (origin.credit, origin.debit):
            return f"{transfer.key}: a reversal swaps the accounts of {origin.key}"
        if transfer.amount != origin.amount:
            return f"{transfer.key}: a reversal moves exactly the amount of {origin.key}"
        return None
    if origin.phase is not Phase.PENDING:
        return f"{transfer.key}: {origin.key} is not a pending transfer"
    if (transfer.kind, transfer.debit, transfer.credit) != (
        origin.kind,
        origin.debit,
        origin.credit,
    ):
        return f"{transfer.key}: kind and accounts must be those of {origin.key}"
    if transfer.amount > origin.amount:
        return f"{transfer.key}: posts {transfer.amount}, more than the {origin.amount} held"
    if transfer.phase is Phase.VOID and transfer.amount != origin.amount:
        return f"{transfer.key}: a void releases exactly the {origin.amount} held"
    # Event time, not arrival time: a tap-off synced hours later still completes its trip.
    expired = origin.timeout_ms is not None and transfer.event_ms > origin.timeout_ms
    if transfer.phase is Phase.POST and expired and transfer.amount != origin.amount:
        return f"{transfer.key}: the hold {origin.key} expired; only all of it can be posted"
    return None


@quick_init
@dataclass(frozen=True, slots=True)
class Receipt:
    """What the store answers for a transfer: the first posting's id and time."""

    key: str
    id: int
    posted_ms: int
    fresh: bool
    """False when the key was already posted with the same content (a faithful retry)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A transfer as the books hold it."""

    id: int
    posted_ms: int
    transfer: Transfer
