"""The record decoder's fast path against its full path.

`decode_record` first reads bytes exactly as `encode_record` writes them, and leaves
everything else to the full check, whose refusals name what is wrong. The fast path may
only ever accept what the full path accepts, as the same value. These tests hold the two
side by side: on valid records, on every field swapped for a near miss, on random swaps, on
the other encodings of valid records, and on mutated and random bytes.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError
from farebox.protocol.records import (
    ClockState,
    EncodedRecord,
    EventKind,
    MediaKind,
    Outcome,
    Reason,
    Record,
    TapType,
    _decode_checked,
    _record_as_sent,
    decode_record,
    encode_record,
    record_to_wire,
)
from tests.support.records import accepted_tap, chain
from tests.support.strategies import records


def fast(raw: bytes) -> Record | None:
    return cbor.decode_exact(raw, _record_as_sent)


def verdict(decode: Callable[[bytes], Record], raw: bytes) -> Record | str:
    try:
        return decode(raw)
    except DecodeError as error:
        return f"DecodeError: {error}"


def assert_paths_agree(raw: bytes) -> None:
    """The fast path takes only what the full path takes, as an identical value, and
    `decode_record` gives the full path's verdict, refusal message included."""
    full = verdict(_decode_checked, raw)
    quick = fast(raw)
    if quick is not None:
        assert isinstance(full, Record), f"the fast path took what the full path refuses: {full}"
        assert quick == full
        assert repr(quick) == repr(full)  # also tells 1 from True
    assert verdict(decode_record, raw) == full


def in_key_order(value: Any) -> Any:
    """`value` with every map in deterministic key order, whatever else it holds."""
    if isinstance(value, dict):
        return {key: in_key_order(value[key]) for key in cbor.key_order(value)}
    if isinstance(value, list):
        return [in_key_order(item) for item in value]
    return value


@given(records)
def test_every_valid_record_takes_the_fast_path(record: Record) -> None:
    assert fast(encode_record(record)) == record


# ---------------------------------------------------------------- one field, near misses

BASE = chain(count=2)[1].record
SHAPES = [
    chain(count=1)[0].record,  # an event
    dataclasses.replace(BASE, body=dataclasses.replace(accepted_tap(), flags=("a", "b"))),
    chain(count=4)[3].record,  # a denied tap
]
ENUM_TEXTS = [m.value for kind in (ClockState, MediaKind, TapType, Outcome, Reason, EventKind)
              for m in kind]  # fmt: skip
EDGES = [0, 1, 2, -1, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63),
         -(2**64), -(2**64) - 1, True, False, None, 0.0, 1.0, 1.5]  # fmt: skip
NEAR_MISSES: list[object] = [
    *EDGES, *ENUM_TEXTS, "", "a", "A", "b", "x" * 64, "x" * 65, "x" * 256, "x" * 257,
    "bus 17", "bus-017", "KZT", "kzt", b"", b"x", bytes(31), bytes(32), bytes(33),
    [], ["a"], ["b", "a"], ["a", "a"], ["a", "b"], [1], [None], [20000, "KZT"],
    [True, "KZT"], [-1, "KZT"], [2**63, "KZT"], [2**63 - 1, "KZT"], [1.0, "KZT"],
    [20000, b"KZT"], [20000, "kzt"], [20000, "KZT", 1], ["KZT", 20000],
    {}, {"a": 1}, {"b": 1, "aa": 2}, {"a": True}, {"a": None}, {"a": 2**64 - 1},
    {"a": [1]}, {"A": 1}, {1: 1}, cbor2.CBORTag(99, "x"),
]  # fmt: skip
DROP = object()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and list index in a record's wire form, as paths from the top."""
    if isinstance(value, dict | list):
        steps = list(value) if isinstance(value, dict) else list(range(len(value)))
        return [p for s in steps for p in [(*prefix, s), *paths(value[s], (*prefix, s))]]
    return []


def at(wire: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        wire = wire[step]
    return wire


def copied(value: Any) -> Any:
    """A copy of every map and list in `value`; the items in them are shared."""
    if isinstance(value, dict):
        return {key: copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copied(item) for item in value]
    return value


def swapped(wire: Any, path: tuple[Any, ...], value: object) -> Any:
    """A copy of `wire` with `value` at `path`, or without that key for `DROP`."""
    copy = copied(wire)
    if value is DROP:
        del at(copy, path[:-1])[path[-1]]
    else:
        at(copy, path[:-1])[path[-1]] = value
    return copy


@pytest.mark.parametrize("record", SHAPES, ids=["event", "accept", "deny"])
def test_the_paths_agree_on_every_field_swapped_for_a_near_miss(record: Record) -> None:
    wire = record_to_wire(record)
    for path in paths(wire):
        for value in [*NEAR_MISSES, DROP]:
            assert_paths_agree(cbor2.dumps(in_key_order(swapped(wire, path, value))))


@pytest.mark.parametrize("record", SHAPES, ids=["event", "accept", "deny"])
def test_the_paths_agree_on_every_map_with_a_key_added(record: Record) -> None:
    wire = record_to_wire(record)
    for path in [(), *(p for p in paths(wire) if isinstance(at(wire, p), dict))]:
        for key in ["", "v", "x", "tap", "evt", "kind", 0, 1]:
            assert_paths_agree(cbor2.dumps(in_key_order(swapped(wire, (*path, key), 1))))


# ---------------------------------------------------------------- random swaps

scalars = (
    st.sampled_from(NEAR_MISSES)
    | st.integers()
    | st.text(max_size=8)
    | st.binary(max_size=33)
    | st.floats(allow_nan=False)
)
cbor_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers(-2, 2), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(records, st.data())
def test_the_paths_agree_on_a_record_with_fields_swapped(
    record: Record, data: st.DataObject
) -> None:
    wire = record_to_wire(record)
    for _ in range(data.draw(st.integers(1, 3), label="swaps")):
        path = data.draw(st.sampled_from(paths(wire)), label="path")
        wire = swapped(wire, path, data.draw(cbor_values | st.just(DROP), label="value"))
        if not paths(wire):
            break
    ordered = in_key_order(wire)
    encodings = [cbor2.dumps(ordered), cbor2.dumps(wire), cbor2.dumps(ordered, canonical=True)]
    encodings.append(cbor2.dumps(ordered, string_referencing=True))
    for raw in encodings:
        assert_paths_agree(raw)


# ---------------------------------------------------------------- other encodings


@given(records, st.data())
def test_a_valid_record_with_one_map_in_another_order_takes_the_full_path(
    record: Record, data: st.DataObject
) -> None:
    wire = in_key_order(record_to_wire(record))
    path = data.draw(
        st.sampled_from([(), *(p for p in paths(wire) if isinstance(at(wire, p), dict))])
    )
    items = data.draw(st.permutations(list(at(wire, path).items())), label="order")
    raw = cbor2.dumps(swapped(wire, path, dict(items)) if path else dict(items))
    assert_paths_agree(raw)
    if raw != encode_record(record):
        assert fast(raw) is None
        with pytest.raises(DecodeError, match="deterministic"):
            decode_record(raw)


def loose(value: Any, data: st.DataObject) -> bytes:
    """`value` as well-formed CBOR with any head width, map keys in any order, and definite
    or indefinite lengths: the other encodings of the same value."""

    def head(major: int, argument: int) -> bytes:
        widths = [w for w in (0, 1, 2, 4, 8) if argument < (24 if w == 0 else 1 << (8 * w))]
        width = data.draw(st.sampled_from(widths))
        if width == 0:
            return bytes([major << 5 | argument])
        code, fmt = {1: (24, ">B"), 2: (25, ">H"), 4: (26, ">I"), 8: (27, ">Q")}[width]
        return bytes([major << 5 | code]) + struct.pack(fmt, argument)

    def indefinite() -> bool:
        return data.draw(st.booleans())

    if value is None or isinstance(value, bool):
        return {None: b"\xf6", False: b"\xf4", True: b"\xf5"}[value]
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes | str):
        major = 2 if isinstance(value, bytes) else 3
        payload = value if isinstance(value, bytes) else value.encode()
        if indefinite():
            return bytes([major << 5 | 31]) + head(major, len(payload)) + payload + b"\xff"
        return head(major, len(payload)) + payload
    if isinstance(value, list):
        items = b"".join(loose(item, data) for item in value)
        return (b"\x9f" + items + b"\xff") if indefinite() else head(4, len(value)) + items
    pairs = data.draw(st.permutations(list(value.items())))
    body = b"".join(loose(key, data) + loose(item, data) for key, item in pairs)
    return (b"\xbf" + body + b"\xff") if indefinite() else head(5, len(value)) + body


@given(records, st.data())
def test_the_paths_agree_on_every_other_encoding_of_a_valid_record(
    record: Record, data: st.DataObject
) -> None:
    raw = loose(in_key_order(record_to_wire(record)), data)
    assert_paths_agree(raw)
    if raw != encode_record(record):
        assert fast(raw) is None


@pytest.mark.parametrize(
    "wrap",
    [
        lambda v: cbor2.dumps(cbor2.CBORTag(55799, v)),
        lambda v: cbor2.dumps(v, string_referencing=True),
        lambda v: cbor2.dumps(cbor2.CBORTag(28, v)),
        lambda v: cbor2.dumps(v) + b"\x00",
        lambda v: cbor2.dumps(v)[:-1],
    ],
    ids=["self-described", "string references", "shareable", "trailing byte", "cut short"],
)
def test_tags_and_extra_bytes_around_a_valid_record_are_refused(
    wrap: Callable[[object], bytes],
) -> None:
    raw = wrap(in_key_order(record_to_wire(BASE)))
    assert fast(raw) is None
    with pytest.raises(DecodeError):
        decode_record(raw)


def test_a_bignum_in_an_event_detail_is_refused_on_both_paths() -> None:
    wire = record_to_wire(SHAPES[0])
    wire["evt"] = {"kind": "boot", "detail": {"n": 2**64}}
    raw = cbor2.dumps(in_key_order(wire))
    assert fast(raw) is None
    with pytest.raises(DecodeError, match="beyond 64 bits"):
        decode_record(raw)


# ---------------------------------------------------------------- bytes


@given(records, st.data())
def test_the_paths_agree_on_mutated_bytes(record: Record, data: st.DataObject) -> None:
    raw = bytearray(encode_record(record))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        index = data.draw(st.integers(0, len(raw)), label="index")
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        byte = data.draw(
            st.sampled_from([0x00, 0x18, 0x19, 0x5F, 0x7F, 0x9F, 0xBF, 0xC2, 0xD8, 0xF5, 0xFF])
            | st.integers(0, 255),
            label="byte",
        )
        if kind == "insert":
            raw.insert(index, byte)
        elif kind == "cut":
            del raw[index:]
        elif index < len(raw):
            if kind == "flip":
                raw[index] ^= 1 << (byte % 8)
            elif kind == "set":
                raw[index] = byte
            else:
                del raw[index]
    assert_paths_agree(bytes(raw))


@given(st.binary(max_size=300))
def test_the_paths_agree_on_random_bytes(raw: bytes) -> None:
    assert_paths_agree(raw)


def test_anything_but_bytes_takes_the_full_path() -> None:
    raw = encode_record(BASE)
    assert fast(bytearray(raw)) is None  # type: ignore[arg-type]
    assert decode_record(bytearray(raw)) == BASE  # type: ignore[arg-type]
    assert decode_record(memoryview(raw)) == BASE  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="expected bytes"):
        decode_record("text")  # type: ignore[arg-type]


# ---------------------------------------------------------------- many records at once


def fast_all(raws: list[bytes]) -> list[Record] | None:
    return cbor.decode_exact_all(raws, _record_as_sent)


def test_many_canonical_records_take_the_fast_path_together() -> None:
    entries = chain(count=9)
    raws = [entry.raw for entry in entries]
    assert fast_all(raws) == [entry.record for entry in entries]
    assert EncodedRecord.parse_all(raws) == entries
    assert fast_all([]) == []


def test_records_cut_at_other_places_are_refused_though_their_bytes_join_the_same() -> None:
    # Every byte is there, in order, and each part re-encodes to its share of the whole:
    # only where the parts begin and end is wrong.
    first, second, third = (entry.raw for entry in chain(count=3))
    for raws in (
        [first + second[:5], second[5:], third],  # the second record starts in the first
        [first[:-1], first[-1:] + second, third],  # the first ends in the second
        [first + second, third],  # two in one: each reads, the join is longer
        [first + second, b"", third],  # and nothing in the next
    ):
        assert fast_all(raws) is None
        with pytest.raises(DecodeError):
            EncodedRecord.parse_all(raws)


@given(records, st.data())
def test_one_other_encoding_among_canonical_records_takes_the_full_path(
    record: Record, data: st.DataObject
) -> None:
    raw = loose(in_key_order(record_to_wire(record)), data)
    canonical = [entry.raw for entry in chain(count=3)]
    at_index = data.draw(st.integers(0, 3), label="position")
    raws = [*canonical[:at_index], raw, *canonical[at_index:]]
    if raw == encode_record(record):
        assert fast_all(raws) is not None
        return
    assert fast_all(raws) is None
    with pytest.raises(DecodeError):
        EncodedRecord.parse_all(raws)


def test_a_trailing_byte_on_one_of_many_records_is_refused() -> None:
    raws = [entry.raw for entry in chain(count=4)]
    raws[2] += b"\x00"
    assert fast_all(raws) is None
    with pytest.raises(DecodeError, match="trailing"):
        EncodedRecord.parse_all(raws)
