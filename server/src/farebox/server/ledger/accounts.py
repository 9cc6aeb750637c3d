"""Accounts: who holds money in the ledger, and what each one's balance means.

An account id says what the account is (`rider:nfc:04a1b2`, `revenue:KZT:citybus:12`,
`clearing:KZT:sms`). Every account holds one currency. A balance is credits minus debits,
so a rider's positive balance is money the operator owes the rider, and the balances of
all accounts of one currency always sum to zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from farebox.protocol.frozen import quick_init
from farebox.protocol.money import Money, check_currency

NAME_LIMIT = 256
"""The longest token, carrier or route: as long as the protocol lets a card token be."""
ID_LIMIT = 600
"""The longest account id: a kind, a currency and two names."""
RIDER_PREFIX = "rider:"
KNOWN_ACCOUNTS = 500_000
"""How many account ids `KnownAccounts` remembers before it starts over."""


class AccountKind(StrEnum):
    RIDER = "rider"
    REVENUE = "revenue"
    CLEARING = "clearing"
    ADJUSTMENT = "adjustment"
    WRITE_OFF = "write_off"
    LIABILITY = "liability"


class Channel(StrEnum):
    """A payment channel through which riders top up; each has a clearing account."""

    SMS = "sms"
    BANK_CARD = "bank_card"
    KIOSK = "kiosk"
    CASH_DESK = "cash_desk"
    APP = "app"


def check_name(value: str, what: str) -> str:
    """Return `value` if it may be part of an account id (a token, carrier or route).

    Any script is welcome, since routes are named as the city names them ("Маршрут 5"):
    1 to NAME_LIMIT printable characters, with no space at either end and no "-"
    first, so that no name reads as a command-line option.
    """
    if not _readable(value, NAME_LIMIT):
        raise ValueError(
            f"{what} must be 1-{NAME_LIMIT} printable characters, not starting with '-' and "
            f"without spaces at either end, got {value!r}"
        )
    return value


def _readable(value: object, limit: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and value.isprintable()
        and value[0] not in "- "
        and value[-1] != " "
    )


@quick_init
@dataclass(frozen=True, slots=True)
class Account:
    """An account's identity and terms; its balance lives in `AccountState`."""

    id: str
    kind: AccountKind
    currency: str
    credit_limit: int = 0
    category: str | None = None

    def __post_init__(self) -> None:
        if not _readable(self.id, ID_LIMIT):  # names that passed check_name always do
            raise ValueError(f"account id must be 1-{ID_LIMIT} printable characters: {self.id!r}")
        if not self.id.startswith(f"{self.kind.value}:"):
            raise ValueError(f"account id {self.id!r} must start with {self.kind.value!r}")
        check_currency(self.currency)
        if isinstance(self.credit_limit, bool) or not isinstance(self.credit_limit, int):
            raise TypeError("credit_limit must be an int of minor units")
        if self.credit_limit < 0:
            raise ValueError("credit_limit must not be negative")
        if self.credit_limit and self.kind is not AccountKind.RIDER:
            raise ValueError("only rider accounts have a credit limit")


@dataclass(frozen=True, slots=True)
class AccountState:
    """An account with its balances at one moment, in minor units."""

    account: Account
    posted: int
    pending_debits: int
    pending_credits: int

    @property
    def available(self) -> Money:
        """What the account may still spend: posted balance less funds held by pendings."""
        return Money(self.posted - self.pending_debits, self.account.currency)

    @property
    def balance(self) -> Money:
        return Money(self.posted, self.account.currency)


def rider_account(
    token: str, currency: str, *, credit_limit: int = 0, category: str | None = None
) -> Account:
    """The stored-value account of one card token or app user."""
    return Account(
        f"{RIDER_PREFIX}{token}",
        AccountKind.RIDER,
        currency,
        credit_limit,
        category,
    )


class KnownAccounts:
    """Ids of accounts seen to exist once a transaction that opened them committed.

    Accounts are never deleted (the database refuses it), so an account seen to exist
    exists for good, and postings skip building and opening it again: most taps are of
    riders seen before. Bounded: past `limit` ids it forgets them all and starts over.
    """

    def __init__(self, limit: int = KNOWN_ACCOUNTS) -> None:
        self._ids: set[str] = set()
        self._limit = limit

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._ids

    def add(self, account_ids: Iterable[str]) -> None:
        """Remember the accounts of `account_ids`; call only after the commit that opened
        them."""
        ids = set(account_ids)
        if len(self._ids) + len(ids) > self._limit:
            self._ids.clear()
        self._ids.update(ids)


def token_of(account_id: str) -> str:
    """The card token of a rider account id."""
    if not account_id.startswith(RIDER_PREFIX):
        raise ValueError(f"{account_id!r} is not a rider account")
    return account_id[len(RIDER_PREFIX) :]


def revenue_id(carrier: str, route: str, currency: str) -> str:
    return f"revenue:{currency}:{carrier}:{route}"


def revenue_account(carrier: str, route: str, currency: str) -> Account:
    """Fare revenue of one carrier on one route."""
    # The id's own check covers the parts: the name pattern admits the separator.
    return Account(revenue_id(carrier, route, currency), AccountKind.REVENUE, currency)


def clearing_account(channel: Channel, currency: str) -> Account:
    """Money received through a payment channel and not yet settled with it."""
    return Account(f"clearing:{currency}:{Channel(channel).value}", AccountKind.CLEARING, currency)


def adjustment_account(currency: str) -> Account:
    """The counterpart of operator corrections that belong to no carrier."""
    return Account(f"adjustment:{currency}", AccountKind.ADJUSTMENT, currency)


def write_off_account(currency: str) -> Account:
    """Rider debt given up as uncollectable."""
    return Account(f"write_off:{currency}", AccountKind.WRITE_OFF, currency)


def ticket_liability_account(currency: str) -> Account:
    """Prepaid QR tickets sold and not yet used."""
    return Account(f"liability:{currency}:tickets", AccountKind.LIABILITY, currency)
