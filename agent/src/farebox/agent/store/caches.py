"""The caches a validator decides from, each versioned and replaced atomically.

One row per kind (stoplist, tariff, issuer keys, device config) holds the newest state:
its version, the checksum of the whole state, the payload, when it was applied and when
the server last confirmed it current (applied, or answered it had nothing newer: a
stoplist's age counts from that). A signed package is
verified, applied to a copy in memory, checked against the checksum it names, and only
then written in one transaction; on any failure the old state stays in force. The
in-memory `Caches` value is what `decide` reads.

A tariff may be sent before the day it takes effect, so the older tariffs that may still
be in force are kept too, a row each (`tariff.earlier.<version>`), until a later one has
taken effect; the tariff in force at a moment is the protocol's `in_force` over them all.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Generic, TypeVar

from farebox.agent.errors import CacheError, FullPackageNeededError
from farebox.agent.store.database import transaction
from farebox.agent.store.stoplist import StoplistIndex
from farebox.protocol import cbor
from farebox.protocol.errors import PackageError, ProtocolError
from farebox.protocol.keys import VerifyKey
from farebox.protocol.packages import Package, PackageKind
from farebox.protocol.stoplist import decode_stoplist_change
from farebox.protocol.tariffs.tariff import Tariff, in_force
from farebox.protocol.tariffs.wire import decode_tariff
from farebox.protocol.tickets.issuers import IssuerKeySet

T = TypeVar("T")
CONFIRM_EVERY_MS = 3_600_000
"""A stoplist confirmed current within this time of the confirmation stored is not written
again: its age is counted in hours (24 at most by default), and an SD card should not take
a write at every poll (every 5 minutes by default)."""
# The rows holding older tariffs that may still come into force (see `Caches.tariff_at`).
EARLIER_TARIFF = "tariff.earlier."


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    """A whole-state cache: its version, parsed value and when it was applied."""

    version: int
    value: T
    applied_ms: int


@dataclass(frozen=True, slots=True)
class Caches:
    """Everything `decide` reads besides the presentation, the history and the clock."""

    stoplist: StoplistIndex = field(default_factory=StoplistIndex)
    tariff: Cached[Tariff] | None = None
    issuers: Cached[IssuerKeySet] | None = None
    config: Cached[Mapping[str, object]] | None = None
    earlier_tariffs: tuple[Cached[Tariff], ...] = ()

    @property
    def tariffs(self) -> tuple[Cached[Tariff], ...]:
        """Every tariff held, the newest last."""
        return self.earlier_tariffs if self.tariff is None else (*self.earlier_tariffs, self.tariff)

    def tariff_at(self, time_ms: int) -> Cached[Tariff] | None:
        """The tariff in force at `time_ms`: a tariff package may be sent before the day it
        takes effect, so the tariffs it follows are kept and price taps until then."""
        held = self.tariffs
        chosen = in_force((c.value for c in held), _moment(time_ms))
        return next((c for c in held if c.value is chosen), None)

    def versions(self) -> dict[str, int]:
        return {
            PackageKind.STOPLIST.value: self.stoplist.version,
            PackageKind.TARIFF.value: _version(self.tariff),
            PackageKind.KEYSET.value: _version(self.issuers),
            PackageKind.CONFIG.value: _version(self.config),
        }


def _version(cached: Cached[T] | None) -> int:
    return 0 if cached is None else cached.version


def _moment(time_ms: int) -> datetime:
    return datetime.fromtimestamp(time_ms / 1000, UTC)


def _still_due(
    held: Sequence[Cached[Tariff]], newest: Cached[Tariff], now_ms: int
) -> tuple[Cached[Tariff], ...]:
    """The tariffs of `held` to keep beside `newest`: those in force at `now_ms` or that
    may be later, by `in_force`'s own rule over them all.

    A tariff not in force at the first moment it could be (its start, or now if that has
    passed) never will be: from then on, the one chosen instead stays ahead of it.
    """
    now, tariffs = _moment(now_ms), [c.value for c in (*held, newest)]
    return tuple(c for c in held if in_force(tariffs, max(now, c.value.effective_from)) is c.value)


def parse_issuers(payload: bytes) -> IssuerKeySet:
    return IssuerKeySet.from_wire(cbor.decode(payload, "issuer keys"))


def parse_config(payload: bytes) -> Mapping[str, object]:
    value = cbor.decode(payload, "device config")
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise CacheError("a device config package is a map with text keys")
    return value


def load(conn: sqlite3.Connection) -> Caches:
    """The caches in force, as the database holds them."""
    caches, earlier = Caches(), []
    rows = conn.execute(
        "SELECT kind, version, checksum, payload, applied_ms, confirmed_ms FROM caches "
        "ORDER BY version"
    )
    try:
        for kind, version, checksum, payload, applied_ms, confirmed_ms in rows:
            if kind.startswith(EARLIER_TARIFF):
                earlier.append(Cached(version, decode_tariff(bytes(payload)), applied_ms))
            elif kind == PackageKind.STOPLIST.value:
                index = StoplistIndex.from_bytes(
                    version, bytes(payload), bytes(checksum), confirmed_ms
                )
                caches = replace(caches, stoplist=index)
            else:
                caches = _with(
                    caches, PackageKind(kind), version, bytes(checksum), bytes(payload), applied_ms
                )
    except (ProtocolError, ValueError) as error:
        raise CacheError(f"a cached package no longer parses: {error}") from None
    return replace(caches, earlier_tariffs=tuple(earlier))


def _with(
    caches: Caches, kind: PackageKind, version: int, checksum: bytes, payload: bytes, at: int
) -> Caches:
    """`caches` with a whole-state package (any kind but the stoplist) applied at `at`."""
    if kind is PackageKind.TARIFF:
        return replace(caches, tariff=Cached(version, decode_tariff(payload), at))
    if kind is PackageKind.KEYSET:
        return replace(caches, issuers=Cached(version, parse_issuers(payload), at))
    return replace(caches, config=Cached(version, parse_config(payload), at))


@dataclass(frozen=True, slots=True)
class PreparedPackage:
    """A package verified and applied in memory, ready to be stored over `base`."""

    package: Package
    base: Caches
    caches: Caches
    payload: bytes
    checksum: bytes


def prepare_package(
    caches: Caches, package: Package, trusted: Iterable[VerifyKey], now_ms: int
) -> PreparedPackage:
    """Verify `package` and apply it to `caches` in memory; touch no database.

    The costly part of a package (the signature over a large body, decoding a million
    tokens, merging them) happens here, so it can run off the thread the taps use.
    FullPackageNeededError means the delta does not apply to what is held (wrong base or
    a checksum mismatch after applying); any other CacheError means the package is bad.
    """
    try:
        package.verify(trusted)
        held = caches.versions()[package.kind.value]
        if package.version <= held:
            raise CacheError(f"{package.kind} {package.version} is not newer than {held}")
        package.check_base(held or None)
        if package.kind is PackageKind.STOPLIST:
            change = decode_stoplist_change(package.payload)
            if change.full == package.is_delta:
                raise CacheError("a stoplist package's payload disagrees with its base version")
            index = caches.stoplist.applied(change, package.version, now_ms)
            package.check_result(index.checksum.digest())
            payload, checksum, new = (
                index.to_bytes(),
                index.checksum.digest(),
                replace(caches, stoplist=index),
            )
        else:
            if package.is_delta:
                raise FullPackageNeededError(f"{package.kind} packages are whole states only")
            payload, checksum = package.payload, hashlib.sha256(package.payload).digest()
            package.check_result(checksum)
            new = _with(caches, package.kind, package.version, checksum, payload, now_ms)
            if new.tariff is not None and package.kind is PackageKind.TARIFF:
                new = replace(new, earlier_tariffs=_still_due(caches.tariffs, new.tariff, now_ms))
    except PackageError as error:
        raise FullPackageNeededError(str(error)) from None
    except (ProtocolError, ValueError) as error:
        raise CacheError(f"{package.kind} {package.version} refused: {error}") from None
    return PreparedPackage(package, caches, new, payload, checksum)


def store_package(conn: sqlite3.Connection, prepared: PreparedPackage, now_ms: int) -> Caches:
    """Write a prepared package in one transaction; return the caches now in force."""
    package = prepared.package
    try:
        with transaction(conn):
            if package.kind is PackageKind.TARIFF:
                _store_earlier_tariffs(conn, prepared.base, prepared.caches.earlier_tariffs)
            conn.execute(
                "INSERT INTO caches (kind, version, checksum, payload, applied_ms, confirmed_ms) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind) DO UPDATE SET "
                "version = excluded.version, checksum = excluded.checksum, "
                "payload = excluded.payload, applied_ms = excluded.applied_ms, "
                "confirmed_ms = excluded.confirmed_ms",
                (
                    package.kind.value,
                    package.version,
                    prepared.checksum,
                    prepared.payload,
                    now_ms,
                    now_ms,
                ),
            )
    except sqlite3.Error as error:
        raise CacheError(f"cannot store {package.kind} {package.version}: {error}") from None
    return prepared.caches


def _store_earlier_tariffs(
    conn: sqlite3.Connection, base: Caches, kept: tuple[Cached[Tariff], ...]
) -> None:
    """Inside the caller's transaction: a row for each earlier tariff kept, none for the rest."""
    keep = {c.version for c in kept}
    for gone in base.earlier_tariffs:
        if gone.version not in keep:
            conn.execute("DELETE FROM caches WHERE kind = ?", (f"{EARLIER_TARIFF}{gone.version}",))
    replaced = base.tariff
    if replaced is not None and replaced.version in keep:
        conn.execute(
            "INSERT INTO caches (kind, version, checksum, payload, applied_ms, confirmed_ms) "
            "SELECT ?, version, checksum, payload, applied_ms, confirmed_ms "
            "FROM caches WHERE kind = ?",
            (f"{EARLIER_TARIFF}{replaced.version}", PackageKind.TARIFF.value),
        )


def confirm_stoplist(conn: sqlite3.Connection, caches: Caches, version: int, now_ms: int) -> Caches:
    """The server answered at `now_ms` that stoplist `version` is still its latest: store
    that (the list's age counts from it) and return the caches now in force.

    Nothing changes if no stoplist is held, or another version was applied meanwhile, or
    the last confirmation stored is less than CONFIRM_EVERY_MS old.
    """
    held = caches.stoplist
    if version == 0 or held.version != version:
        return caches
    if held.confirmed_ms is not None and 0 <= now_ms - held.confirmed_ms < CONFIRM_EVERY_MS:
        return caches
    try:
        with transaction(conn):
            conn.execute(
                "UPDATE caches SET confirmed_ms = ? WHERE kind = ?",
                (now_ms, PackageKind.STOPLIST.value),
            )
    except sqlite3.Error as error:
        raise CacheError(f"cannot store that stoplist {version} is current: {error}") from None
    return replace(caches, stoplist=replace(held, confirmed_ms=now_ms))


def apply_package(
    conn: sqlite3.Connection,
    caches: Caches,
    package: Package,
    trusted: Iterable[VerifyKey],
    now_ms: int,
) -> Caches:
    """Verify and apply `package`; return the new caches, or raise with the old in force."""
    return store_package(conn, prepare_package(caches, package, trusted, now_ms), now_ms)
