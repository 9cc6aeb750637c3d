"""Fares: what a batch's accepted taps post to the ledger, and the taps it cannot post.

The ledger's own rules (`ledger.posting`) make each tap's transfer; this is where a
device's records meet the operator's books (the fare-day policy, new riders' credit limit,
the carrier of each route), and where a tap whose fare the ledger cannot make is set
aside with the reason instead of failing its batch.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace

from farebox.protocol.records import EncodedRecord, MediaKind, Tap
from farebox.server import environment as env
from farebox.server.errors import ConfigurationError
from farebox.server.ledger import posting, writes
from farebox.server.ledger.accounts import Account, rider_account
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.posting import FareTap, fare_transfer, tap_from_record


@dataclass(frozen=True, slots=True)
class Carriers:
    """Which carrier's revenue a route's fares go to."""

    default: str = "city"
    routes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A revenue account is `revenue:<currency>:<carrier>:<route>`: a ":" in a carrier
        # would make carrier "a:b" on route "c" and carrier "a" on route "b:c" one account.
        for carrier in (self.default, *self.routes.values()):
            if ":" in carrier:
                raise ConfigurationError(
                    f"a carrier's name may not hold ':' ({env.FAREBOX_CARRIER}), got {carrier!r}"
                )

    def of(self, route: str) -> str:
        return self.routes.get(route, self.default)


@dataclass(frozen=True, slots=True)
class Books:
    """What ingest posts with: the fare-day policy, new riders' credit limit, carriers."""

    policy: FareDayPolicy
    credit_limit: int = 0
    carriers: Carriers = field(default_factory=Carriers)


def fare_tap(entry: EncodedRecord, carriers: Carriers) -> FareTap | None:
    """The ledger's tap of `entry` if it is an accepted tap with a fare, else None.

    A QR ticket was paid for when it was bought, so its validation is taken out of the
    ticket liability rather than the rider's account (ARCHITECTURE section 9).
    """
    tap = tap_from_record(entry.record, carriers.of)
    if tap is None:
        return None
    body = entry.record.body
    prepaid = isinstance(body, Tap) and body.media is MediaKind.QR
    return replace(tap, prepaid=True) if prepaid else tap


def fare_accounts(
    taps: Sequence[FareTap], credit_limit: int, known: Container[str] = frozenset()
) -> list[Account]:
    """The accounts `taps` name bar the `known` ones, new riders getting `credit_limit`."""

    def rider(token: str, currency: str, category: str | None) -> Account:
        return rider_account(token, currency, credit_limit=credit_limit, category=category)

    return posting.fare_accounts(taps, rider, known)


Unposted = tuple[int, str]
"""An accepted tap whose fare is not posted: its seq, and why."""


def fare_posting(
    entries: Sequence[EncodedRecord], books: Books, known: Container[str], now_ms: int
) -> tuple[writes.Posting, list[Unposted]]:
    """The fare transfers of `entries`, and the accounts they name bar the `known` ones,
    to post at `now_ms`; and the taps set aside because the ledger cannot post them (a
    route or token it cannot name), each with the reason."""
    taps: list[FareTap] = []
    transfers = []
    unposted: list[Unposted] = []
    for entry in entries:
        try:
            tap = fare_tap(entry, books.carriers)
            if tap is None:
                continue
            transfers.append(fare_transfer(tap, books.policy))
        except ValueError as error:
            unposted.append((entry.record.seq, str(error)))
            continue
        taps.append(tap)
    accounts = fare_accounts(taps, books.credit_limit, known)
    return writes.Posting.of(transfers, accounts, now_ms), unposted
