"""The errors of farebox.server, with one root.

    ServerError                     anything this package raises on purpose
    ├── ConfigurationError          a bad setting or environment variable; fix it and restart
    ├── StoreError                  the store cannot be opened or used as asked
    │   ├── UnsupportedStoreError   a store URL that is neither sqlite:/// nor postgresql://
    │   ├── MigrationError          the schema is newer than this code, or a migration failed
    │   └── StoreFullError          the store's disk is full; the transaction was not kept
    ├── LedgerError                 a ledger request refused; nothing was posted
    │   ├── UnknownAccountError     an account that does not exist (or of the wrong currency)
    │   ├── IdempotencyConflictError  a key already used for a transfer with other content
    │   ├── InsufficientFundsError  a refund larger than what the rider has available
    │   ├── OutOfRangeError         an amount or a balance that would pass 64 bits
    │   └── TransferStateError      a transfer to resolve or reverse that is unknown, already
    │                               resolved or reversed, or expired
    └── SyncError                   a device or operator request refused, with the stable
                                    code and HTTP status the API answers with; its subtree
                                    (enrollment, authentication, malformed bodies, unknown
                                    devices, missing packages) is in farebox.server.sync.errors

Each refusal is raised before or inside the database transaction that would have posted,
so a refused request leaves the books exactly as they were. Python's own TypeError and
ValueError remain bugs in the caller (a float where money is expected), not conditions.
"""

from __future__ import annotations

from collections.abc import Sequence


class ServerError(Exception):
    """Root of every error farebox.server raises on purpose."""


class ConfigurationError(ServerError):
    """A setting is missing or malformed."""


class StoreError(ServerError):
    """The store cannot be opened or used."""


class UnsupportedStoreError(StoreError):
    """A store URL with a scheme that farebox does not speak."""


class MigrationError(StoreError):
    """The schema cannot be brought to this code's version."""


class StoreFullError(StoreError):
    """The store's disk (or a SQLite file's size cap) is full: the transaction that hit it
    was rolled back, and nothing of it was kept. Requests work again once space is freed."""


class LedgerError(ServerError):
    """The ledger refused a request; the books are unchanged."""


class UnknownAccountError(LedgerError):
    """An account that does not exist."""


class IdempotencyConflictError(LedgerError):
    """An idempotency key that was already used for a transfer with different content."""

    def __init__(self, keys: Sequence[str]) -> None:
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        super().__init__(f"idempotency key reused with different content: {shown}")
        self.keys = tuple(keys)


class InsufficientFundsError(LedgerError):
    """A payout that the account's available balance does not cover."""


class OutOfRangeError(LedgerError):
    """An amount or a balance that would not fit in 64 bits; nothing was posted."""

    def __init__(self) -> None:
        super().__init__("an amount or a balance would not fit in 64 bits; nothing was posted")


class TransferStateError(LedgerError):
    """A transfer that cannot be resolved or reversed (unknown, already done, or expired)."""
