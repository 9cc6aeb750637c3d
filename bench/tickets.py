"""QR ticket verification and simulated NFC taps, each beside a ceiling from the same run.

- Ticket verify: the whole of `ticket.verify` (prefix, Base45, strict CBOR, claims, key
  lookup, signature, validity window), EdDSA and ES256; the ceiling is the bare signature
  check of the same Sig_structure bytes with `cryptography`. Target <= 0.5 ms.
- NFC tap to presentation: from the simulated card's first answer to the Presentation the
  adapter hands to asyncio (double sense for clash, activation, UID and NDEF read); the
  ceiling is stock nfcpy's sense, activation and NDEF read of the same card, alone.

    .venv/bin/python -m bench.tickets
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import nfc
import nfc.clf
import nfc.tag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bench.table import Row, microseconds_each, render
from farebox.agent.presentation import CardTechnology, Presentation
from farebox.agent.readers.nfc import NfcReader
from farebox.protocol.tickets import base45, cose, ticket
from farebox.protocol.tickets.issuers import IssuerKey, IssuerKeySet
from farebox.simulators.card import Card, CardEmulator

NOW = 1_790_000_000
TAPS = 30
TICKET = ticket.Ticket(
    ticket_id=bytes(range(8)),
    issuer="almaty-transit",
    product="single",
    category="adult",
    uses=1,
    issued_at=NOW,
    valid_from=NOW,
    valid_until=NOW + 5400,
)


def best_of(action: Callable[[], object], count: int, rounds: int = 5) -> float:
    """Microseconds per run in the quickest of `rounds` batches: these hosts are noisy."""
    return min(microseconds_each(action, count // rounds) for _ in range(rounds))


def verify_row(name: str, key: cose.PrivateKey, count: int = 3000) -> Row:
    text = ticket.issue(TICKET, key, kid=b"k1")
    keys = IssuerKeySet((IssuerKey.of(key, kid=b"k1", issuer=TICKET.issuer, valid_from=0),))
    message = cose.decode(base45.decode(text[len(ticket.PREFIX) :]))
    data, signature, public = cose.to_be_signed(message), message.signature, key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        ecdsa = ec.ECDSA(hashes.SHA256())
        ceiling = best_of(lambda: public.verify(der, data, ecdsa), count)
    else:
        ceiling = best_of(lambda: public.verify(signature, data), count)
    figure = best_of(lambda: ticket.verify(text, keys, NOW), count)
    what = f"QR ticket verify, {name} ({len(text)} chars)"
    return Row(what, figure, "us", ceiling, "<= 500 us")


def verify_rows() -> list[Row]:
    return [
        verify_row("EdDSA", Ed25519PrivateKey.generate()),
        verify_row("ES256", ec.generate_private_key(ec.SECP256R1())),
    ]


def stock_read_ms(emulator: CardEmulator, card: Card) -> float:
    """Stock nfcpy alone: sense, activate and read the NDEF of the card in the field."""
    emulator.place(card)
    clf = nfc.ContactlessFrontend(emulator.path)
    times = []
    try:
        for _ in range(TAPS):
            started = time.perf_counter()
            tag = nfc.tag.activate(clf, clf.sense(nfc.clf.RemoteTarget("106A"), iterations=1))
            assert tag is not None
            assert tag.ndef is not None
            times.append((time.perf_counter() - started) * 1000)
    finally:
        clf.close()
        emulator.remove()
    return statistics.median(times)


async def adapter_read_ms(emulator: CardEmulator, card: Card) -> float:
    """The adapter: first card answer to the Presentation on the event loop."""
    events: asyncio.Queue[object] = asyncio.Queue()
    reader = NfcReader("bench", emulator.path, targets=("106A",))
    reader.start(asyncio.get_running_loop(), events.put_nowait)
    times = []
    try:
        for _ in range(TAPS):
            emulator.place(card)
            event = await asyncio.wait_for(events.get(), 10)
            arrived = time.monotonic()
            assert isinstance(event, Presentation)
            assert emulator.answered_at is not None
            times.append((arrived - emulator.answered_at) * 1000)
            emulator.remove()
            await asyncio.wait_for(events.get(), 10)  # CardRemoved
    finally:
        reader.stop()
    return statistics.median(times)


def tap_rows() -> list[Row]:
    rows = []
    cards = (
        Card(CardTechnology.TYPE2, bytes.fromhex("04a1b2c3d4e5f6"), b"FB1:ticket"),
        Card(CardTechnology.TYPE4, bytes.fromhex("08112233"), b"FB1:ticket"),
    )
    for card in cards:
        with CardEmulator() as emulator:
            ceiling = stock_read_ms(emulator, card)
            figure = asyncio.run(adapter_read_ms(emulator, card))
        what = f"simulated NFC tap to presentation, {card.technology} (median of {TAPS})"
        rows.append(Row(what, figure, "ms", ceiling, "gate budget 500 ms"))
    return rows


def main() -> None:
    print(render("QR tickets and NFC taps", verify_rows() + tap_rows()))


if __name__ == "__main__":
    main()
