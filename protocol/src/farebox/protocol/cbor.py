"""Deterministic CBOR (RFC 8949 section 4.2.1) and strict decoding.

Everything a device exchanges with the server is encoded here. Encoding follows the core
deterministic rules: shortest-form integers and lengths, definite lengths only, map keys
sorted by their encoded bytes. Decoding is strict: the input must be exactly one data item,
in that deterministic form, made only of the types farebox uses (unsigned and negative
integers, byte strings, text strings, arrays, maps, booleans and null). Anything else is a
DecodeError whose message says what was wrong. Floats, tags and undefined are refused
because no farebox message has them, and accepting them would let two encodings of one
message hash differently. The one exception is `decode_tagged`, for a standard format that
wraps its content in a tag (a COSE_Sign1 ticket); `parse` reads such formats without the
deterministic check, and `deterministic` orders a value's maps for encoding under a tag.
`decode_exact` is a decoder's fast path for bytes in exactly the form its encoder writes:
it only ever accepts, and leaves every refusal to `decode`; `decode_exact_all` takes many
such items (a batch's records) with one re-encoding for them all.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeAlias, TypeVar

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

T = TypeVar("T")
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
    # cbor2 hands back what a tag holds immutable: its maps as frozendict, arrays as tuples.
    if kind is dict or kind is cbor2.frozendict:
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


def _in_order(value: object) -> bool:
    """True if `value` is made of farebox's types, as plain dicts and lists, with every map
    already in deterministic key order: then `cbor2.dumps(value)` is the encoding of
    `_ordered(value)`, byte for byte. Anything else, even what `_ordered` would accept,
    is False (or `_ForeignItemError` from a bad key); the caller then takes the full check.
    """
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX  # type: ignore[operator]
    if kind is dict:
        mapping: dict[object, object] = value  # type: ignore[assignment]
        keys = tuple(mapping)
        if _key_order(keys, tuple(map(type, keys))) != keys:
            return False
        items: Iterable[object] = mapping.values()
    elif kind is list:
        items = value  # type: ignore[assignment]
    else:
        return False
    # A plain loop, not all() over a generator: this runs for every item of every record.
    for item in items:  # noqa: SIM110
        if type(item) not in _PLAIN and not _in_order(item):
            return False
    return True


def key_order(keys: Iterable[str]) -> tuple[str, ...]:
    """`keys` in the order a deterministic map holds them: by their encoded bytes."""
    return tuple(sorted(keys, key=_encoded_key))


def is_ordered(value: object) -> bool:
    """True if `value` is made of farebox's types, as plain dicts and lists, with every
    integer within 64 bits and every map in deterministic key order.
    """
    try:
        return _in_order(value)
    except _ForeignItemError:
        return False


def deterministic(value: object) -> object:
    """`value` with every map in deterministic key order, ready for `cbor2.dumps`.

    For what `encode` cannot take whole, such as a tagged COSE message:
    `cbor2.dumps(cbor2.CBORTag(18, deterministic(content)))`. TypeError for anything that is
    not one of farebox's CBOR types.
    """
    try:
        return _ordered(value)
    except _ForeignItemError as error:
        raise TypeError(f"cannot encode: {error}") from None


def encode(value: Value) -> bytes:
    """Encode `value` in deterministic CBOR."""
    return cbor2.dumps(deterministic(value))


def parse(data: bytes, what: str = "message") -> object:
    """Decode exactly one well-formed CBOR item of any kind, tags kept, or raise DecodeError.

    Neither the deterministic form nor farebox's types are checked: this reads standard
    formats as they come (a COSE header, CWT claims); `decode` and `decode_tagged` add both.
    """
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
    return value


def decode(data: bytes, what: str = "message") -> object:
    """Decode exactly one deterministic CBOR item of farebox's types, or raise DecodeError."""
    # Fast path for what peers send nearly always: deterministic bytes of farebox's types.
    # It only accepts, and only when the re-encoding of the decoded value, maps left as
    # they came, is exactly `data`: then `data` is one item with nothing after it, and the
    # full check below would accept the same value. Everything else, every refusal and its
    # message included, is left to that one check.
    if type(data) is bytes:
        try:
            value = cbor2.loads(data)
            if _in_order(value) and cbor2.dumps(value) == data:
                return value
        except Exception:  # noqa: BLE001, S110 - the full check below says what is wrong
            pass
    value = parse(data, what)
    _require_deterministic(value, bytes(data), what)
    return value


def decode_exact(data: bytes, build: Callable[[object], T]) -> T | None:
    """`build(value)` if `data` is the deterministic encoding of `value`, else None.

    A decoder's fast path. `build` takes the decoded value only in exactly the shape its
    encoder writes, and raises ValueError or LookupError for anything else: every map with
    its keys in `key_order`, every item of exactly the type cbor2 hands back for valid
    bytes, every integer within 64 bits (what `is_ordered` checks of a value whose shape is
    not fixed). Re-encoding such a value as it stands gives `data` back byte for byte
    exactly when `data` is one deterministic item with nothing after it. None is not a
    verdict: the caller then decodes with `decode` and its own checks, which say what is
    wrong.
    """
    built = decode_exact_all((data,), build)
    return None if built is None else built[0]


def decode_exact_all(items: Sequence[bytes], build: Callable[[object], T]) -> list[T] | None:
    """`decode_exact` of every one of `items`, or None if any of them is not exact.

    One re-encoding checks them all: the values' encodings, one after another, are the
    items' bytes one after another exactly when each item is the encoding of its value.
    Each item's value is decoded from its start; CBOR items are prefix-free, so where the
    two byte strings agree, an encoding and the item read at the same place end at the
    same place: by induction every item is its value's encoding, with nothing after it.
    """
    if not all(type(item) is bytes for item in items):
        return None
    try:
        values = [cbor2.loads(item) for item in items]  # each read from its start
    except Exception:  # noqa: BLE001 - `decode` says what is wrong
        return None
    try:
        built = [build(value) for value in values]
    except (ValueError, LookupError):
        return None
    # An array's encoding is its head, then its items' encodings one after another.
    expected = _array_head(len(items)) + b"".join(items)
    return built if cbor2.dumps(values) == expected else None


def _array_head(count: int) -> bytes:
    """The bytes that begin the encoding of an array of `count` items."""
    return cbor2.dumps([None] * count)[: -count or None]  # each null is one byte


def decode_tagged(data: bytes, tag: int, what: str = "message") -> object:
    """Decode one deterministic CBOR item wrapped in `tag` and return what the tag holds.

    The content must be of farebox's types, like everything `decode` accepts; the tag itself
    is the one tag allowed, and only at the top.
    """
    item = parse(data, what)
    if not isinstance(item, cbor2.CBORTag) or item.tag != tag:
        raise DecodeError(f"{what}: the tag {tag} is required")
    _require_deterministic(item.value, bytes(data), what, tag)
    return item.value


def _require_deterministic(value: object, data: bytes, what: str, tag: int | None = None) -> None:
    """DecodeError unless `data` is `value` (in `tag` if given) encoded deterministically."""
    try:
        ordered = _ordered(value)
    except _ForeignItemError as error:
        raise DecodeError(f"{what}: {error}") from None
    if cbor2.dumps(ordered if tag is None else cbor2.CBORTag(tag, ordered)) != data:
        raise DecodeError(f"{what}: not in deterministic encoding (RFC 8949 section 4.2.1)")
