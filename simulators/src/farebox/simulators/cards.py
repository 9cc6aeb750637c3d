"""Simulated cards: the bytes each card type answers to a reader's commands.

Each class is the card side of one NFC Forum tag type, as nfcpy's stock reader talks to
it over the UDP driver: frames in, answer out (None keeps silent, as a card does for a
command it ignores). The field, the anticollision and the socket live in `card.py`.

- Type 2: an NTAG213 (45 pages, NDEF in a TLV from page 4), answering READ, FAST_READ,
  GET_VERSION and READ_SIG; silent on AUTHENTICATE, so nfcpy takes it for an NTAG.
- Type 3: an NFC Forum FeliCa card (system 12FC), answering Polling, Request Response,
  Request System Code and Read Without Encryption of the NDEF service.
- Type 4A: ISO-DEP after RATS, with the NDEF application (mapping 2.0: CC file E103,
  NDEF file E104) and the farebox application, whose SELECT answers the card's payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from operator import xor

NDEF_AID_V2 = bytes.fromhex("D2760000850101")
OK = b"\x90\x00"
NOT_FOUND = b"\x6a\x82"
NOT_SUPPORTED = b"\x6d\x00"
NTAG213_VERSION = bytes.fromhex("0004040201000F03")
NTAG213_USER_BYTES = 144
# PMm byte 5 sets the reader's read timeout; the largest value keeps a busy test host
# from losing answers. IC code 0xFF is no Sony product, so nfcpy reads plain Type 3.
FELICA_PMM = bytes.fromhex("00FF00000000FF00")
NDEF_SYSTEM = b"\x12\xfc"


def bcc(data: bytes) -> int:
    return reduce(xor, data, 0)


@dataclass(slots=True)
class Type2Card:
    """An NTAG213 holding `ndef` (an encoded NDEF message)."""

    uid: bytes
    ndef: bytes
    memory: bytearray = field(init=False)

    def __post_init__(self) -> None:
        tlv = b"\x03" + _tlv_length(self.ndef) + self.ndef + b"\xfe"
        if len(tlv) > NTAG213_USER_BYTES:
            raise ValueError(f"an NTAG213 holds {NTAG213_USER_BYTES} bytes, not {len(tlv)}")
        u = self.uid
        header = u[0:3] + bytes([0x88 ^ bcc(u[0:3])]) + u[3:7] + bytes([bcc(u[3:7]), 0x48, 0, 0])
        capability = b"\xe1\x10\x12\x00"  # NDEF 1.0, 0x12 * 8 = 144 bytes, read/write
        user = tlv.ljust(NTAG213_USER_BYTES, b"\x00")
        config = bytes.fromhex("000000BD 040000FF 00050000 FFFFFFFF 00000000")
        self.memory = bytearray(header + capability + user + config)

    def answer(self, frame: bytes) -> bytes | None:
        command = frame[:1]
        if command == b"\x30" and len(frame) == 2:  # READ: 4 pages, wrapping at the end
            start = frame[1] * 4
            doubled = self.memory + self.memory
            return bytes(doubled[start : start + 16]) if start < len(self.memory) else b"\x00"
        if command == b"\x3a" and len(frame) == 3:  # FAST_READ
            return bytes(self.memory[frame[1] * 4 : (frame[2] + 1) * 4])
        if command == b"\x60":
            return NTAG213_VERSION
        if command == b"\x3c":
            return bytes(32)  # READ_SIG: an unsigned sample
        if command in (b"\x1a", b"\x50"):  # AUTHENTICATE (Ultralight C only), HALT
            return None
        return b"\x00"  # NAK


@dataclass(slots=True)
class Type3Card:
    """An NFC Forum Type 3 (FeliCa) card with IDm `uid` holding `ndef`."""

    uid: bytes
    ndef: bytes
    blocks: list[bytes] = field(init=False)

    def __post_init__(self) -> None:
        data = self.ndef + bytes(-len(self.ndef) % 16)
        count = len(data) // 16
        attribute = bytearray(16)
        attribute[0:5] = bytes([0x10, 4, 1]) + count.to_bytes(2, "big")  # ver, nbr, nbw
        attribute[11:14] = len(self.ndef).to_bytes(3, "big")
        attribute[14:16] = sum(attribute[0:14]).to_bytes(2, "big")
        self.blocks = [bytes(attribute)] + [data[i : i + 16] for i in range(0, len(data), 16)]

    def polled(self, frame: bytes) -> bytes | None:
        """The answer to Polling (command 0), which needs no IDm."""
        system, request = frame[2:4], frame[4]
        if not all(want in (0xFF, have) for want, have in zip(system, NDEF_SYSTEM, strict=True)):
            return None
        body = b"\x01" + self.uid + FELICA_PMM + (NDEF_SYSTEM if request == 1 else b"")
        return bytes([len(body) + 1]) + body

    def answer(self, frame: bytes) -> bytes | None:
        if len(frame) < 2 or frame[0] != len(frame):
            return None
        if frame[1] == 0x00 and len(frame) >= 6:
            return self.polled(frame)
        if frame[2:10] != self.uid:
            return None
        body: bytes
        if frame[1] == 0x04:  # Request Response: mode 0
            body = b"\x05" + self.uid + b"\x00"
        elif frame[1] == 0x0C:  # Request System Code
            body = b"\x0d" + self.uid + b"\x01" + NDEF_SYSTEM
        elif frame[1] == 0x06:
            body = b"\x07" + self.uid + self._read(frame[10:])
        else:
            return None
        return bytes([len(body) + 1]) + body

    def _read(self, params: bytes) -> bytes:
        services = params[0]
        codes = [params[1 + 2 * i] | params[2 + 2 * i] << 8 for i in range(services)]
        if any(code & 0x3F not in (0x09, 0x0B) or code >> 6 for code in codes):
            return b"\x01\xa6"  # status: illegal service code
        rest = params[1 + 2 * services :]
        wanted, position, numbers = rest[0], 1, []
        for _ in range(wanted):
            if rest[position] & 0x80:  # two-byte block list element
                numbers.append(rest[position + 1])
                position += 2
            else:
                numbers.append(rest[position + 1] | rest[position + 2] << 8)
                position += 3
        if any(number >= len(self.blocks) for number in numbers):
            return b"\x01\xa8"  # status: illegal block number
        return b"\x00\x00" + bytes([len(numbers)]) + b"".join(self.blocks[n] for n in numbers)


@dataclass(slots=True)
class Type4Card:
    """An ISO-DEP card with the NDEF application and, if `apdu` is set, the farebox one."""

    uid: bytes
    ndef: bytes
    apdu: bytes | None
    farebox_aid: bytes
    _application: bytes = b""
    _file: bytes = b""

    def answer(self, frame: bytes) -> bytes | None:
        pcb = frame[0]
        if pcb == 0xE0:  # RATS: FSCI 8 (256 bytes), FWI 8 (77 ms), no CID, no NAD
            self._application = self._file = b""
            return bytes.fromhex("0578808000")
        if pcb & 0xFE == 0x02:  # an I-block: one APDU, answered in a block of the same number
            return bytes([pcb]) + self._apdu(frame[1:])
        if pcb & 0xFE == 0xB2:  # R(NAK), nfcpy's presence check: acknowledge
            return bytes([0xA2 | pcb & 1])
        if pcb == 0xC2:  # DESELECT
            return b"\xc2"
        return None

    def _apdu(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return b"\x67\x00"
        instruction, p1, p2 = apdu[1], apdu[2], apdu[3]
        data = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
        if instruction == 0xA4 and p1 == 0x04:
            return self._select_application(data)
        if instruction == 0xA4 and p1 == 0x00 and self._application == NDEF_AID_V2:
            if data in (b"\xe1\x03", b"\xe1\x04"):
                self._file = data
                return OK
            return NOT_FOUND
        if instruction == 0xB0 and self._file:
            offset = p1 << 8 | p2
            length = (apdu[4] or 256) if len(apdu) == 5 else 256
            return self._file_bytes()[offset : offset + length] + OK
        return NOT_SUPPORTED

    def _select_application(self, aid: bytes) -> bytes:
        self._file = b""
        if aid == NDEF_AID_V2:
            self._application = aid
            return OK
        if aid == self.farebox_aid and self.apdu is not None:
            self._application = aid
            return self.apdu + OK
        self._application = b""
        return NOT_FOUND

    def _file_bytes(self) -> bytes:
        if self._file == b"\xe1\x03":
            size = (len(self.ndef) + 2).to_bytes(2, "big")
            return bytes.fromhex("000F 20 00FF 00FF 0406 E104") + size + b"\x00\xff"
        return len(self.ndef).to_bytes(2, "big") + self.ndef


def _tlv_length(data: bytes) -> bytes:
    return bytes([len(data)]) if len(data) < 0xFF else b"\xff" + len(data).to_bytes(2, "big")
