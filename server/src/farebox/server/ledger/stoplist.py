"""The stoplist: card tokens the validators must refuse, versioned for publishing.

A token is listed while it has at least one block reason: the automatic `balance` reason
(its rider account is below the credit limit) or an operator's (lost, stolen, fraud).
Each time a token enters or leaves the list the list gets a new version, recorded with the
checksum of the whole list at that version, the way Google's Web Risk update API lets a
client check the state it reached by applying deltas.

The checksum is `farebox.protocol.stoplist.StoplistChecksum` (an order-independent set
hash the validators compute too); adding or removing one token updates it in constant
time, so every version has its checksum without rehashing a million tokens. This module
is pure: the stores feed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from farebox.protocol.stoplist import StoplistChange, StoplistChecksum


class BlockReason(StrEnum):
    BALANCE = "balance"
    """Set and cleared by the ledger as the rider's balance crosses the credit limit."""
    LOST = "lost"
    STOLEN = "stolen"
    FRAUD = "fraud"
    OTHER = "other"


OPERATOR_REASONS = frozenset(BlockReason) - {BlockReason.BALANCE}


@dataclass(frozen=True, slots=True)
class Head:
    """The latest version of the list and its checksum."""

    version: int
    checksum: bytes


@dataclass(frozen=True, slots=True)
class BlockChange:
    """Add or remove one reason for one token."""

    token: str
    reason: BlockReason
    add: bool
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """The list at `version` differs from the one before by `token` entering or leaving."""

    version: int
    token: str
    listed: bool
    checksum: bytes


@dataclass(frozen=True, slots=True)
class Plan:
    """What the store must write to apply a set of block changes atomically."""

    reasons_added: tuple[BlockChange, ...]
    reasons_removed: tuple[BlockChange, ...]
    changes: tuple[Change, ...]
    head: Head

    @property
    def growth(self) -> int:
        """How many more tokens the list holds after the plan (negative: fewer)."""
        return sum(1 if change.listed else -1 for change in self.changes)


def plan_changes(
    head: Head, reasons: Mapping[str, frozenset[BlockReason]], requests: Sequence[BlockChange]
) -> Plan:
    """Apply `requests` to the tokens' current `reasons`; redundant requests are dropped."""
    current = {token: set(found) for token, found in reasons.items()}
    added: list[BlockChange] = []
    removed: list[BlockChange] = []
    changes: list[Change] = []
    version = head.version
    checksum = StoplistChecksum(int.from_bytes(head.checksum, "big"))
    for request in requests:
        held = current.setdefault(request.token, set())
        was_listed = bool(held)
        if request.add == (request.reason in held):
            continue
        if request.add:
            held.add(request.reason)
            added.append(request)
        else:
            held.discard(request.reason)
            removed.append(request)
        if bool(held) != was_listed:
            version += 1
            tokens = (request.token,)
            checksum = checksum.add(tokens) if held else checksum.remove(tokens)
            changes.append(Change(version, request.token, bool(held), checksum.digest()))
    return Plan(tuple(added), tuple(removed), tuple(changes), Head(version, checksum.digest()))


@dataclass(frozen=True, slots=True)
class Delta:
    """How to go from the list at `since` to the list at `version`, and its checksum there."""

    since: int
    version: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    checksum: bytes


def net_delta(since: int, head: Change | Head, changes: Iterable[Change]) -> Delta:
    """Fold the changes after `since` (in version order) into net additions and removals.

    A token's changes alternate between entering and leaving, so it differs between the two
    versions exactly when its first and last change in the range agree.
    """
    first: dict[str, bool] = {}
    last: dict[str, bool] = {}
    for change in changes:
        first.setdefault(change.token, change.listed)
        last[change.token] = change.listed
    moved = [token for token, listed in last.items() if first[token] == listed]
    return Delta(
        since,
        head.version,
        tuple(sorted(t for t in moved if last[t])),
        tuple(sorted(t for t in moved if not last[t])),
        head.checksum,
    )


def package_change(delta: Delta) -> StoplistChange:
    """The delta in the form a stoplist package carries to the validators."""
    return StoplistChange(
        full=False, added=frozenset(delta.added), removed=frozenset(delta.removed)
    )


EMPTY_HEAD = Head(0, StoplistChecksum().digest())
