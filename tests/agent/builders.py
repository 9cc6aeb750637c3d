"""Builders for the agent's tests: presentations, caches with a real tariff, QR tickets."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farebox.agent.presentation import CardTechnology, Media, Presentation, ReadTime
from farebox.agent.store.caches import Cached, Caches
from farebox.agent.store.state import Store
from farebox.agent.store.stoplist import StoplistIndex
from farebox.protocol import cbor
from farebox.protocol.keys import SigningKey
from farebox.protocol.packages import PackageKind, sign_package
from farebox.protocol.stoplist import StoplistChange
from farebox.protocol.tariffs.native import load_tariff
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.wire import encode_tariff
from farebox.protocol.tickets import ticket
from farebox.protocol.tickets.issuers import IssuerKey, IssuerKeySet
from farebox.protocol.tickets.ticket import Ticket

ROOT = Path(__file__).resolve().parents[2]
TARIFF_FILE = ROOT / "packaging" / "tariffs" / "city-kzt.toml"
# 2026-11-26 08:00:00 UTC, 13:00 in Almaty.
MORNING_MS = 1_795_680_000_000
ISSUER_KEY = Ed25519PrivateKey.from_private_bytes(b"\x17" * 32)
KID = b"app-1"


def city_tariff() -> Tariff:
    return load_tariff(TARIFF_FILE.read_text())


def card(
    uid: bytes = b"\x04\xa1\xb2\xc3", *, clash: bool = False, at_ms: int = MORNING_MS
) -> Presentation:
    return Presentation(
        "nfc-0",
        Media.NFC,
        read_at(at_ms),
        uid=uid,
        technology=CardTechnology.TYPE2,
        clash=clash,
    )


def scan(text: str, at_ms: int = MORNING_MS) -> Presentation:
    return Presentation("qr-0", Media.QR, read_at(at_ms), text=text)


def read_at(at_ms: int) -> ReadTime:
    return ReadTime(at_ms / 1000, datetime.fromtimestamp(at_ms / 1000, UTC))


def qr_ticket(
    ticket_id: bytes = b"T-0001",
    *,
    uses: int = 1,
    product: str = "bus-ride",
    category: str = "adult",
    valid_from_ms: int = MORNING_MS - 3_600_000,
    valid_until_ms: int = MORNING_MS + 3_600_000,
    key: Ed25519PrivateKey = ISSUER_KEY,
) -> str:
    held = Ticket(
        ticket_id=ticket_id,
        issuer="city-app",
        product=product,
        category=category,
        uses=uses,
        issued_at=valid_from_ms // 1000,
        valid_from=valid_from_ms // 1000,
        valid_until=valid_until_ms // 1000,
    )
    return ticket.issue(held, key, kid=KID)


def issuers() -> IssuerKeySet:
    return IssuerKeySet((IssuerKey.of(ISSUER_KEY, kid=KID, issuer="city-app", valid_from=0),))


def caches(
    *,
    stoplisted: frozenset[str] = frozenset(),
    stoplist_at_ms: int | None = MORNING_MS - 60_000,
    tariff: bool = True,
    config: dict[str, object] | None = None,
) -> Caches:
    stoplist = StoplistIndex()
    if stoplist_at_ms is not None:
        stoplist = stoplist.applied(
            StoplistChange(full=True, added=stoplisted, removed=frozenset()), 41, stoplist_at_ms
        )
    built = Caches(
        stoplist=stoplist,
        tariff=Cached(3, city_tariff(), 0) if tariff else None,
        issuers=Cached(2, issuers(), 0),
    )
    return replace(built, config=Cached(1, config, 0)) if config is not None else built


PACKAGE_KEY = SigningKey.from_seed(b"\x5e" * 32)


def install_packages(database: Path, device: str) -> None:
    """Apply the city tariff and the QR issuer keys to a state database, as a sync would."""
    tariff = encode_tariff(city_tariff())
    keyset = cbor.encode(issuers().to_wire())  # type: ignore[arg-type]
    store = Store.open(database, device, lock_timeout_ms=1000)
    try:
        for kind, payload in ((PackageKind.TARIFF, tariff), (PackageKind.KEYSET, keyset)):
            digest = hashlib.sha256(payload).digest()
            package = sign_package(kind, 1, None, digest, payload, PACKAGE_KEY)
            store.apply_package(package, [PACKAGE_KEY.verify_key], 0)
    finally:
        store.close()
