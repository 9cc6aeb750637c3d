"""`farebox-sim card`: cards tapped on nfcpy's UDP reader, from the card's side of the air.

The reader stays stock nfcpy (`ContactlessFrontend('udp:127.0.0.1:PORT')`); this emulator
keeps ONE socket bound to that port and answers whoever sent each frame. Building it on
nfcpy's own `listen()` loop instead proved flaky: that loop rebinds its socket mid-tap.

Every sense of the reader comes from a fresh socket, so a source address is one field
session: the card chosen at its first frame (REQA/WUPA or Polling) answers the rest of it.
Two cards in the field answer their own technologies; two of one technology take turns
from session to session, as anticollision may pick either card.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import ndef

from farebox.agent.presentation import CardTechnology
from farebox.agent.readers.nfc import FAREBOX_AID, FAREBOX_NDEF_TYPE
from farebox.simulators.cards import Type2Card, Type3Card, Type4Card, bcc

_UID_LENGTHS = {
    CardTechnology.TYPE2: (7,),
    CardTechnology.TYPE3: (8,),
    CardTechnology.TYPE4: (4, 7),
}
_SAK = {CardTechnology.TYPE2: 0x00, CardTechnology.TYPE4: 0x20}
Emulation = Type2Card | Type3Card | Type4Card
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Card:
    """A card to tap: its technology, UID (IDm for Type 3) and farebox payload, if any.

    `payload` is written as the farebox NDEF record; `apdu` (Type 4 only) is what the
    card answers to SELECT of the farebox application. A Type 4 card speaks NFC-A unless
    `type_b` is set: then its `uid` is its 4-byte PUPI.
    """

    technology: CardTechnology
    uid: bytes
    payload: bytes | None = None
    apdu: bytes | None = None
    type_b: bool = False

    def __post_init__(self) -> None:
        if len(self.uid) not in _UID_LENGTHS[self.technology]:
            allowed = " or ".join(map(str, _UID_LENGTHS[self.technology]))
            raise ValueError(f"a {self.technology} card has a {allowed}-byte UID")
        if self.technology is CardTechnology.TYPE3 and self.uid[:2] == b"\x01\xfe":
            raise ValueError("an IDm starting 01FE marks a peer-to-peer device, not a card")
        if self.apdu is not None and self.technology is not CardTechnology.TYPE4:
            raise ValueError("only a Type 4 card answers APDUs")
        if self.type_b and (self.technology is not CardTechnology.TYPE4 or len(self.uid) != 4):
            raise ValueError("only a Type 4 card speaks NFC-B, with a 4-byte PUPI")
        self.emulation()  # fails now, not mid-tap, if the payload does not fit

    @classmethod
    def from_json(cls, value: dict[str, str | bool]) -> Card:
        """A card from `{"technology", "uid" (hex), "payload" (text), "apdu" (hex), "type_b"}`."""
        payload, apdu = value.get("payload"), value.get("apdu")
        return cls(
            CardTechnology(str(value["technology"])),
            bytes.fromhex(str(value["uid"])),
            None if payload is None else str(payload).encode(),
            None if apdu is None else bytes.fromhex(str(apdu)),
            value.get("type_b") is True,
        )

    def ndef_message(self) -> bytes:
        records = [] if self.payload is None else [ndef.Record(FAREBOX_NDEF_TYPE, "", self.payload)]
        return b"".join(ndef.message_encoder(records)) if records else b"\xd0\x00\x00"

    def emulation(self) -> Emulation:
        """A fresh card state for one field session."""
        message = self.ndef_message()
        if self.technology is CardTechnology.TYPE2:
            return Type2Card(self.uid, message)
        if self.technology is CardTechnology.TYPE3:
            return Type3Card(self.uid, message)
        return Type4Card(self.uid, message, self.apdu, FAREBOX_AID)


def load_cards(path: Path) -> list[Card]:
    """Cards from a JSON file holding one card object or a list of them."""
    value = json.loads(path.read_text())
    return [Card.from_json(item) for item in (value if isinstance(value, list) else [value])]


@dataclass(slots=True)
class _Session:
    card: Card
    emulation: Emulation
    cascade: list[bytes]  # SDD_RES per cascade level (Type A)


def _bind_readable(host: str, port: int) -> socket.socket:
    """A UDP socket on a port nfcpy's UDP driver can read back.

    That driver resolves the port through `getnameinfo` without NI_NUMERICSERV, so a port
    named in /etc/services (60179 is "fido") comes back as a name and fails `int()`. An
    ephemeral port is drawn again until it has no name; a named port asked for is refused.
    """
    for _ in range(64):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port))
        bound_host, bound_port = sock.getsockname()
        if socket.getnameinfo((bound_host, bound_port), socket.NI_NUMERICHOST)[1].isdigit():
            return sock
        sock.close()
        if port:
            raise ValueError(
                f"UDP port {port} has a service name, which nfcpy's UDP driver cannot read; "
                "choose another"
            )
    raise OSError(f"no ephemeral UDP port without a service name on {host}")


class CardEmulator:
    """Cards in the field of a simulated reader; `place`, `remove` and `tap` script it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = _bind_readable(host, port)
        self._lock = threading.Lock()
        self._field: tuple[Card, ...] = ()
        self._sessions: dict[Address, _Session] = {}
        self._rounds = 0
        self.answered_at: float | None = None  # monotonic time of the first answer to a reader
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> str:
        """The nfcpy path of the reader side: `udp:HOST:PORT`."""
        host, port = self._socket.getsockname()
        return f"udp:{host}:{port}"

    def place(self, *cards: Card) -> None:
        """Put `cards` in the field (two or more is a card clash)."""
        with self._lock:
            self._field, self._sessions = tuple(cards), {}
            self.answered_at = None

    def remove(self) -> None:
        """Take every card out of the field."""
        self.place()

    def tap(self, card: Card, hold_s: float = 1.5) -> None:
        """Hold `card` in the field for `hold_s` seconds, then take it away."""
        self.place(card)
        time.sleep(hold_s)
        self.remove()

    def start(self) -> CardEmulator:
        self._thread = threading.Thread(target=self.serve, name="card-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(1.0)
        self._socket.close()

    def __enter__(self) -> CardEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def serve(self) -> None:
        """Answer frames until `stop()`; runs on the caller's thread."""
        while not self._stopping.is_set():
            if not select.select([self._socket], [], [], 0.1)[0]:
                continue
            datagram, address = self._socket.recvfrom(1024)
            with self._lock:
                answer = self._answer(datagram, address)
            if answer is not None:
                if self.answered_at is None:
                    self.answered_at = time.monotonic()
                self._socket.sendto(answer, address)

    def _answer(self, datagram: bytes, address: Address) -> bytes | None:
        parts = datagram.split()
        if len(parts) != 2:  # RFOFF, or nothing a card could hear
            self._sessions.pop(address, None)
            return None
        brty, frame = parts[0], bytes.fromhex(parts[1].decode())
        if brty == b"106A":
            reply = self._type_a(frame, address)
        elif brty == b"212F" and frame[1:2] == b"\x00" and address not in self._sessions:
            felica = [card for card in self._field if card.technology is CardTechnology.TYPE3]
            reply = self._start(address, felica, frame)
        elif brty == b"106B":
            reply = self._type_b(frame, address)
        else:
            session = self._sessions.get(address)
            reply = None if session is None else session.emulation.answer(frame)
        return None if reply is None else brty + b" " + reply.hex().encode()

    def _start(self, address: Address, candidates: list[Card], frame: bytes) -> bytes | None:
        """Open a field session with one of `candidates`, answering its first frame."""
        if not candidates:
            return None
        self._rounds += 1
        card = candidates[self._rounds % len(candidates)]
        session = _Session(card, card.emulation(), _cascade(card.uid))
        self._sessions[address] = session
        if isinstance(session.emulation, Type3Card):
            return session.emulation.polled(frame)
        if card.type_b:
            # SENSB_RES: PUPI, no application data, 106 kbps only, FSCI 8 and ISO 14443-4,
            # FWI 8: the same frame size and waiting time as the NFC-A card's ATS.
            return b"\x50" + card.uid + bytes(4) + b"\x00\x81\x80"
        return b"\x44\x00" if len(card.uid) == 7 else b"\x04\x00"  # SENS_RES (ATQA)

    def _type_b(self, frame: bytes, address: Address) -> bytes | None:
        if frame[:1] == b"\x05" and len(frame) == 3:  # SENSB_REQ / ALLB_REQ
            return self._start(address, [card for card in self._field if card.type_b], frame)
        session = self._sessions.get(address)
        if session is None:
            return None
        if frame[:1] == b"\x1d" and frame[1:5] == session.card.uid:  # ATTRIB: no CID
            return b"\x00"
        return session.emulation.answer(frame)

    def _type_a(self, frame: bytes, address: Address) -> bytes | None:
        if frame in (b"\x26", b"\x52"):  # REQA / WUPA
            nfc_a = [card for card in self._field if _speaks_nfc_a(card)]
            return self._start(address, nfc_a, frame)
        session = self._sessions.get(address)
        if session is None:
            return None
        for level, command in enumerate((0x93, 0x95)):
            if level >= len(session.cascade):
                break
            sdd_res = session.cascade[level]
            if frame == bytes([command, 0x20]):
                return sdd_res
            if frame == bytes([command, 0x70]) + sdd_res:
                last = level == len(session.cascade) - 1
                return bytes([_SAK[session.card.technology] if last else 0x04])
        return session.emulation.answer(frame)


def _speaks_nfc_a(card: Card) -> bool:
    return card.technology is not CardTechnology.TYPE3 and not card.type_b


def _cascade(uid: bytes) -> list[bytes]:
    """The SDD_RES of each cascade level: 4-byte UIDs take one, 7-byte UIDs two."""
    levels = [uid] if len(uid) != 7 else [b"\x88" + uid[0:3], uid[3:7]]
    return [part + bytes([bcc(part)]) for part in levels]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `farebox-sim card`."""
    parser = commands.add_parser(
        "card",
        help="simulated NFC cards on nfcpy's UDP reader",
        description="Bind the card side of nfcpy's UDP driver, print the reader path, and "
        "tap cards: one given by --uid, or each card of --file in turn.",
    )
    parser.add_argument("--udp", default="127.0.0.1:0", help="HOST:PORT to bind")
    parser.add_argument("--uid", help="the card's UID in hex")
    parser.add_argument(
        "--technology", choices=[kind.value for kind in CardTechnology], default="type2"
    )
    parser.add_argument("--type-b", action="store_true", help="a Type 4 card on NFC-B")
    parser.add_argument("--payload", help="farebox payload (a ticket text) on the card")
    parser.add_argument("--file", type=Path, help="JSON file of cards to tap in order")
    parser.add_argument("--clash", action="store_true", help="hold all cards at once")
    parser.add_argument("--wait", type=float, default=1.0, help="seconds before the first tap")
    # nfcpy's UDP reader waits 1 s on an empty field before it asks again: hold longer.
    parser.add_argument("--hold", type=float, default=1.5, help="seconds each card is held")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between taps")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    cards = load_cards(args.file) if args.file else []
    if args.uid:
        payload = None if args.payload is None else args.payload.encode()
        technology, uid = CardTechnology(args.technology), bytes.fromhex(args.uid)
        cards.append(Card(technology, uid, payload, type_b=args.type_b))
    if not cards:
        raise SystemExit("farebox-sim card: give --uid or --file")
    host, _, port = args.udp.rpartition(":")
    with CardEmulator(host, int(port)) as emulator:
        out.write(f"{emulator.path}\n")
        out.flush()
        time.sleep(args.wait)
        if args.clash:
            emulator.place(*cards)
            time.sleep(args.hold)
            emulator.remove()
        for card in [] if args.clash else cards:
            emulator.tap(card, args.hold)
            time.sleep(args.gap)
    return 0
