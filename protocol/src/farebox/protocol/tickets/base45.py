"""Base45 (RFC 9285): bytes as text in the QR alphanumeric character set.

Two bytes become three characters and a trailing single byte becomes two, so a QR code in
alphanumeric mode carries the result at 5.5 bits a character. Decoding is strict: a
character outside the 45-character alphabet, a dangling single character, or a group whose
value does not fit the bytes it stands for is a DecodeError.
"""

from __future__ import annotations

from farebox.protocol.errors import DecodeError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {character: index for index, character in enumerate(ALPHABET)}


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
        values = [_VALUE[character] for character in text]
    except KeyError as error:
        raise DecodeError(f"base45: {error.args[0]!r} is not in the alphabet") from None
    out = bytearray()
    for start in range(0, len(values), 3):
        group = values[start : start + 3]
        number = sum(value * 45**power for power, value in enumerate(group))
        width = len(group) - 1
        if number >= 256**width:
            raise DecodeError(f"base45: group {text[start : start + 3]!r} is out of range")
        out += number.to_bytes(width, "big")
    return bytes(out)
