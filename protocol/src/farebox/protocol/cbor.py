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

_PLAIN = (int, bytes, str, bool, type(None))


def encode(value: Value) -> bytes:
    """Encode `value` in deterministic CBOR."""
    return cbor2.dumps(value, canonical=True)


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
    except (cbor2.CBORDecodeError, RecursionError, ValueError, OverflowError) as error:
        raise DecodeError(f"{what}: not well-formed CBOR ({error})") from None
    if stream.tell() != len(data):
        raise DecodeError(f"{what}: {len(data) - stream.tell()} trailing bytes after the item")
    _check_types(value, what)
    if cbor2.dumps(value, canonical=True) != data:
        raise DecodeError(f"{what}: not in deterministic encoding (RFC 8949 section 4.2.1)")
    return value


def _check_types(value: object, what: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _PLAIN):
            continue
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise DecodeError(f"{what}: map key of type {type(key).__name__}")
                stack.append(inner)
        else:
            raise DecodeError(f"{what}: CBOR item of type {type(item).__name__} not allowed")
