"""Base45 (RFC 9285): bytes as text in the QR alphanumeric character set.

Two bytes become three characters and a trailing single byte becomes two, so a QR code in
alphanumeric mode carries the result at 5.5 bits a character. Decoding is strict: a
character outside the 45-character alphabet, a dangling single character, or a group whose
value does not fit the bytes it stands for is a DecodeError.
"""

from __future__ import annotations

from farebox.protocol.errors import DecodeError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
# Byte -> its Base45 value, or _INVALID; bytes.translate does the lookup at C speed.
_VALUES = bytes(
    ALPHABET.index(chr(byte)) if chr(byte) in ALPHABET else _INVALID for byte in range(256)
)


def encode(data: bytes) -> str:
    """Encode `data` as Base45 text."""
    out: list[str] = []
    for start in range(0, len(data) - 1, 2):
        rest, c = divmod(data[start] * 256 + data[start + 1], 45)
        e, d = divmod(rest, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def decode(text: str) -> bytes:
    """Decode Base45 `text`, or raise DecodeError saying where it is wrong."""
    if len(text) % 3 == 1:
        raise DecodeError(f"base45: length {len(text)} leaves a single character at the end")
    try:
        values = text.encode("ascii").translate(_VALUES)
    except UnicodeEncodeError as error:
        raise DecodeError(f"base45: {error.object[error.start]!r} is not in the alphabet") from None
    if _INVALID in values:
        bad = text[values.index(_INVALID)]
        raise DecodeError(f"base45: {bad!r} is not in the alphabet")
    out = bytearray()
    # Written out, not folded into one generic loop: this runs on every scanned ticket.
    whole = len(values) - len(values) % 3
    for start in range(0, whole, 3):
        number = values[start] + values[start + 1] * 45 + values[start + 2] * 2025
        if number > 0xFFFF:
            raise DecodeError(f"base45: group {text[start : start + 3]!r} is out of range")
        out += number.to_bytes(2, "big")
    if whole < len(values):
        number = values[whole] + values[whole + 1] * 45
        if number > 0xFF:
            raise DecodeError(f"base45: group {text[whole:]!r} is out of range")
        out.append(number)
    return bytes(out)
