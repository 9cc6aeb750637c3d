"""Stoplist state and deltas as they travel in packages, with an incremental checksum.

The checksum of a stoplist is the sum, modulo 2**256, of SHA-256(token) over its tokens,
written as 32 big-endian bytes. It does not depend on order, and adding or removing one
token changes it in constant time, so a validator holding a million tokens can check a
10k-token delta without rehashing the whole list. (It detects divergence; it is not a
security boundary: the package signature is.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.wire import Fields

_MODULUS = 2**256
MAX_TOKEN_LENGTH = 256


def token_weight(token: str) -> int:
    return int.from_bytes(hashlib.sha256(token.encode()).digest(), "big")


@dataclass(frozen=True, slots=True)
class StoplistChecksum:
    """The order-independent checksum of a set of tokens."""

    value: int = 0

    def add(self, tokens: Iterable[str]) -> StoplistChecksum:
        return StoplistChecksum((self.value + sum(map(token_weight, tokens))) % _MODULUS)

    def remove(self, tokens: Iterable[str]) -> StoplistChecksum:
        return StoplistChecksum((self.value - sum(map(token_weight, tokens))) % _MODULUS)

    def digest(self) -> bytes:
        return self.value.to_bytes(32, "big")

    @classmethod
    def of(cls, tokens: Iterable[str]) -> StoplistChecksum:
        return cls().add(tokens)


@dataclass(frozen=True, slots=True)
class StoplistChange:
    """Tokens added and removed: the whole list when `full`, else a delta."""

    full: bool
    added: frozenset[str]
    removed: frozenset[str]

    def __post_init__(self) -> None:
        if self.full and self.removed:
            raise InvalidValueError("a full stoplist removes nothing")
        if self.added & self.removed:
            raise InvalidValueError("a token is both added and removed")
        for token in self.added | self.removed:
            if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
                raise InvalidValueError(f"bad stoplist token {token!r}")


def encode_stoplist_change(change: StoplistChange) -> bytes:
    return cbor.encode(
        {"full": change.full, "add": sorted(change.added), "del": sorted(change.removed)}
    )


def decode_stoplist_change(data: bytes) -> StoplistChange:
    fields = Fields.of(cbor.decode(data, "stoplist"), "stoplist")
    fields.expect_keys({"full", "add", "del"})
    added, removed = fields.list_of("add", str), fields.list_of("del", str)
    if added != sorted(set(added)) or removed != sorted(set(removed)):
        raise DecodeError("stoplist: token lists must be sorted and unique")
    try:
        return StoplistChange(fields.boolean("full"), frozenset(added), frozenset(removed))
    except InvalidValueError as error:
        raise DecodeError(f"stoplist: {error}") from None
