"""Deterministic CBOR (RFC 8949 section 4.2.1) and strict decoding.

Everything a device exchanges with the server is encoded here. Encoding follows the core
deterministic rules: shortest-form integers and lengths, definite lengths only, map keys
sorted by their encoded bytes. Decoding is strict: the input must be exactly one data item,
in that deterministic form, made only of the types farebox uses (unsigned and negative
integers, byte strings, text strings, arrays, maps, booleans and null). Anything else is a
DecodeError whose message says what was wrong. Floats, tags and undefined are refused
because no farebox message has them, and accepting them would let two encodings of one
message hash differently.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import cbor2

from farebox.protocol.errors import DecodeError

Value: TypeAlias = (
    int
    | bytes
    | str
    | bool
    | Sequence["Value"]
    | Mapping[str, "Value"]
    | Mapping[int, "Value"]
    | None
)

_PLAIN = frozenset({bytes, str, bool, type(None)})
# CBOR's own integers (major types 0 and 1); anything larger needs a bignum tag.
_INT_MIN, _INT_MAX = -(2**64), 2**64 - 1


class _ForeignItemError(Exception):
    """A decoded item of a type farebox messages never hold."""


def _encoded_key(key: object) -> bytes:
    if type(key) not in (str, int):
        raise _ForeignItemError(f"map key of type {type(key).__name__}")
    return cbor2.dumps(key)


@functools.lru_cache(maxsize=1024)
def _key_order(keys: tuple[object, ...], _types: tuple[type, ...]) -> tuple[object, ...]:
    """`keys` sorted by their encoded bytes; cached, since messages repeat their key sets.

    The key types are part of the cache key because `(True,) == (1,)`: without them a
    bool key could borrow an int key's cached order and slip past the type check.
    """
    return tuple(sorted(keys, key=_encoded_key))


def _ordered(value: object) -> object:
    """A copy of `value` whose maps iterate in deterministic key order.

    cbor2 writes shortest-form integers and definite lengths already; what its fast path
    leaves to insertion order is map keys. Putting them in the order of their encoded bytes
    (RFC 8949 section 4.2.1) here and using the plain encoder is several times faster than
    cbor2's canonical mode, and the decoder pays this on every record it checks.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
            return value
        raise _ForeignItemError("integer beyond 64 bits (bignum tags are not allowed)")
    if kind is dict:
        mapping: dict[object, object] = value  # type: ignore[assignment]
        keys = tuple(mapping)
        return {
            key: item if type(item := mapping[key]) in _PLAIN else _ordered(item)
            for key in _key_order(keys, tuple(map(type, keys)))
        }
    if kind is list or kind is tuple:
        items: list[object] = value  # type: ignore[assignment]
        return [item if type(item) in _PLAIN else _ordered(item) for item in items]
    raise _ForeignItemError(f"CBOR item of type {kind.__name__} not allowed")


def encode(value: Value) -> bytes:
    """Encode `value` in deterministic CBOR."""
    try:
        return cbor2.dumps(_ordered(value))
    except _ForeignItemError as error:
        raise TypeError(f"cannot encode: {error}") from None


def decode(data: bytes, what: str = "message") -> object:
    """Decode exactly one deterministic CBOR item of farebox's types, or raise DecodeError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise DecodeError(f"{what}: empty input")
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as error:  # noqa: BLE001 - any failure to parse peer bytes is malformed
        raise DecodeError(f"{what}: not well-formed CBOR ({error})") from None
    if stream.tell() != len(data):
        raise DecodeError(f"{what}: {len(data) - stream.tell()} trailing bytes after the item")
    try:
        canonical = cbor2.dumps(_ordered(value))
    except _ForeignItemError as error:
        raise DecodeError(f"{what}: {error}") from None
    if canonical != data:
        raise DecodeError(f"{what}: not in deterministic encoding (RFC 8949 section 4.2.1)")
    return value
