"""Signed packages for devices: tariffs, issuer key sets, device config, stoplists.

Whole-state kinds (tariff, keyset, config) are published by an operator: each
publication is the next version, signed once and kept. The stoplist is the ledger's, so
its packages are made on request: a delta from the version the device holds when fewer
versions (one change each) separate it from the head than the list holds tokens, else the
whole list. The last whole list made is kept (`Snapshots`) for the devices that ask for
the same version next. Every package names the checksum of the whole state after
applying it.

The package keys live in the database, so that several server processes sign alike; the
newest unretired key signs, and every unretired key is trusted, which is how a key is
rotated without a device ever holding a package it cannot check.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from farebox.protocol import cbor
from farebox.protocol.keys import SigningKey, VerifyKey
from farebox.protocol.package_keys import Endorsement, endorse
from farebox.protocol.packages import (
    Package,
    PackageKind,
    decode_package,
    encode_package,
    sign_package,
)
from farebox.protocol.stoplist import StoplistChange, encode_stoplist_change
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.wire import decode_tariff
from farebox.server.errors import StoreError
from farebox.server.ledger import reads, writes
from farebox.server.ledger.stoplist import Head, package_change
from farebox.server.ledger.store import Session
from farebox.server.sync.errors import NoPackageError, StoplistAheadError

log = logging.getLogger(__name__)
PUBLISH_TRIES = 100
PUBLISHED_KINDS = frozenset({PackageKind.TARIFF, PackageKind.KEYSET, PackageKind.CONFIG})
DEFAULT_CONFIG: Mapping[str, cbor.Value] = {"in_service": True}


async def _newest_key(session: Session) -> tuple[SigningKey, int] | None:
    """The newest unretired package key and when it was made."""
    rows = await session.fetch(
        "SELECT private_pem, created_ms FROM package_keys WHERE retired_ms IS NULL "
        "ORDER BY created_ms DESC, key_id LIMIT 1"
    )
    return (SigningKey.from_pem(bytes(rows[0][0])), rows[0][1]) if rows else None


async def signing_key(session: Session, now_ms: int) -> SigningKey:
    """The key that signs new packages: the newest unretired one, made on first use."""
    newest = await _newest_key(session)
    return newest[0] if newest else await rotate_key(session, now_ms)


async def rotate_key(session: Session, now_ms: int) -> SigningKey:
    """Make a new package key; it signs from now on, and the older ones stay trusted.

    The key that signed until now endorses it, so that enrolled devices come to trust it
    (`endorsements`). A key is made at least a millisecond after the key that endorses it,
    even by rotations within one millisecond or after the clock went back, so that every
    endorsement comes after its signer's in the order devices read them.
    """
    newest = await _newest_key(session)
    key = SigningKey.generate()
    link = None if newest is None else endorse(key.verify_key, newest[0])
    made_ms = now_ms if newest is None else max(now_ms, newest[1] + 1)
    await session.execute(
        "INSERT INTO package_keys (key_id, public_key, private_pem, created_ms, endorsed_by,"
        " endorsement) VALUES ($1, $2, $3, $4, $5, $6)",
        key.key_id, key.verify_key.raw, key.to_pem(), made_ms,
        None if link is None else link.signer, None if link is None else link.signature,
    )  # fmt: skip
    return key


async def endorsements(session: Session) -> list[Endorsement]:
    """Every package key endorsed by the key before it, in the order they were made."""
    rows = await session.fetch(
        "SELECT public_key, endorsed_by, endorsement FROM package_keys"
        " WHERE endorsement IS NOT NULL ORDER BY created_ms, key_id"
    )
    return [Endorsement(VerifyKey(bytes(key)), bytes(by), bytes(sig)) for key, by, sig in rows]


async def trusted_keys(session: Session) -> list[VerifyKey]:
    rows = await session.fetch(
        "SELECT public_key FROM package_keys WHERE retired_ms IS NULL ORDER BY created_ms"
    )
    return [VerifyKey(bytes(raw)) for (raw,) in rows]


async def publish(session: Session, kind: PackageKind, payload: bytes, now_ms: int) -> Package:
    """Publish `payload` as the next version of a whole-state kind."""
    if kind not in PUBLISHED_KINDS:
        raise ValueError(f"{kind} packages are not published by hand")
    key = await signing_key(session, now_ms)
    checksum = hashlib.sha256(payload).digest()
    # Two servers publishing at once on PostgreSQL may both read the same latest version:
    # the second insert then waits for the first, skips, and reads again (each statement
    # sees what was committed before it). Each turn round means another publication landed.
    for _ in range(PUBLISH_TRIES):
        ((latest,),) = await session.fetch(
            "SELECT coalesce(max(version), 0) FROM packages WHERE kind = $1", kind.value
        )
        package = sign_package(kind, latest + 1, None, checksum, payload, key)
        inserted = await session.fetch(
            "INSERT INTO packages (kind, version, body, created_ms) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (kind, version) DO NOTHING RETURNING version",
            kind.value, package.version, encode_package(package), now_ms,
        )  # fmt: skip
        if inserted:
            return package
    raise StoreError(f"{kind} packages are being published too fast to take one more")


async def latest(session: Session, kind: PackageKind) -> Package | None:
    """The newest published package of a whole-state kind, or None."""
    rows = await session.fetch(
        "SELECT body FROM packages WHERE kind = $1 ORDER BY version DESC LIMIT 1", kind.value
    )
    return decode_package(bytes(rows[0][0])) if rows else None


async def published_tariffs(session: Session) -> list[tuple[int, Tariff]]:
    """Every published tariff with its package version, oldest first, as validators hold
    them: settlement prices each tap with the one in force at its time."""
    rows = await session.fetch(
        "SELECT version, body FROM packages WHERE kind = $1 ORDER BY version",
        PackageKind.TARIFF.value,
    )
    return [(version, decode_tariff(decode_package(bytes(body)).payload)) for version, body in rows]


async def config_package(session: Session, now_ms: int) -> Package:
    """The device config in force, publishing the default one if none was."""
    found = await latest(session, PackageKind.CONFIG)
    if found is not None:
        return found
    return await publish(session, PackageKind.CONFIG, cbor.encode(DEFAULT_CONFIG), now_ms)


@dataclass(slots=True)
class Snapshots:
    """The last whole-stoplist package made, for the next devices that want the same
    version signed by the same key. A million tokens take seconds to read, encode and sign
    (3.5 s on the 2-core machine), and a fleet enrolled together asks for one version."""

    kept: Package | None = None

    def find(self, version: int, key_id: bytes) -> Package | None:
        kept = self.kept
        if kept is None or (kept.version, kept.key_id) != (version, key_id):
            return None
        return kept


async def stoplist_package(
    session: Session,
    device: str,
    have: int,
    checksum: bytes | None,
    now_ms: int,
    snapshots: Snapshots,
) -> Package | None:
    """The stoplist for `device` holding version `have` whose whole list has `checksum`
    (None if the device did not say); None if it is up to date.

    A list this store did not publish, a version past its head or a checksum other than
    its own at that version, is one it lost in a restore from a backup: the device gets
    the whole list, renumbered past its version where need be (`renumber_stoplist`), or
    StoplistAheadError where the store will not renumber it now.
    """
    head = await reads.stoplist_head(session)
    foreign = have > head.version or (
        checksum is not None and have > 0 and await _checksum_at(session, head, have) != checksum
    )
    if have == head.version and not foreign:
        return None
    if have >= head.version:
        head = await _renumbered(session, device, have, head, now_ms)
    key = await signing_key(session, now_ms)
    # Each version is one change, so a delta holds at most head - have tokens: from as
    # many versions as the list holds tokens, the whole list is the smaller package, and
    # it is sent without reading the changes (a million of them took 3.7 s and 335 MB).
    if (
        not foreign
        and 0 < have < head.version
        and head.version - have < await reads.stoplist_size(session)
    ):
        change = package_change(await reads.stoplist_delta(session, have))
        return sign_package(
            PackageKind.STOPLIST, head.version, have, head.checksum,
            encode_stoplist_change(change), key,
        )  # fmt: skip
    kept = snapshots.find(head.version, key.key_id)
    if kept is not None:
        return kept
    tokens = await reads.stoplist_tokens(session)
    full = StoplistChange(full=True, added=frozenset(tokens), removed=frozenset())
    snapshots.kept = sign_package(
        PackageKind.STOPLIST, head.version, None, head.checksum, encode_stoplist_change(full), key
    )
    return snapshots.kept


async def _checksum_at(session: Session, head: Head, version: int) -> bytes:
    if version == head.version:
        return head.checksum
    return (await reads.stoplist_head_at(session, version)).checksum


async def _renumbered(session: Session, device: str, have: int, head: Head, now_ms: int) -> Head:
    moved, renumbered = await writes.renumber_stoplist(session, device, have, now_ms)
    if renumbered:
        log.warning(
            "device %s holds a stoplist version %d this store did not publish (it is at %d:"
            " restored from a backup?); the stoplist is now version %d, which validators"
            " take whole",
            device, have, head.version, moved.version,
        )  # fmt: skip
    elif moved.version <= have:
        raise StoplistAheadError(
            f"this device holds stoplist version {have}, which this server did not publish"
            f" (it is at {moved.version}); it renumbers its list past such a version at most"
            " once an hour, and never 2**40 or more past its own"
        )
    return moved


async def package_for(
    session: Session,
    device: str,
    kind: PackageKind,
    have: int,
    checksum: bytes | None,
    now_ms: int,
    snapshots: Snapshots,
) -> Package | None:
    """What `device` holding version `have` of `kind`, whose state has `checksum` (None if
    not told), should get; None if up to date. Only the stoplist's checksum is compared."""
    if kind is PackageKind.STOPLIST:
        return await stoplist_package(session, device, have, checksum, now_ms, snapshots)
    found = await (
        config_package(session, now_ms) if kind is PackageKind.CONFIG else latest(session, kind)
    )
    if found is None:
        raise NoPackageError(f"no {kind} package is published", "no_package")
    return None if found.version == have else found
