from __future__ import annotations

import dataclasses

import pytest

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.records import (
    ClockState,
    EncodedRecord,
    Event,
    EventKind,
    Reason,
    Record,
    decode_record,
    encode_record,
    record_to_wire,
)
from tests.support.records import accepted_tap, chain, denied_tap


def a_record(**changes: object) -> Record:
    base = chain(count=2)[1].record
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_tap_round_trips_through_its_canonical_bytes() -> None:
    record = a_record()
    raw = encode_record(record)
    assert decode_record(raw) == record
    assert encode_record(decode_record(raw)) == raw


@pytest.mark.parametrize(
    "body",
    [
        denied_tap(reason=Reason.PASSBACK),
        Event.of(EventKind.ROUTE_CHANGE, route="12", direction="outbound"),
        Event.of(EventKind.CLOCK_SET, offset_ms=-4200),
        Event(EventKind.TAMPER),
    ],
)
def test_every_body_round_trips(body: object) -> None:
    record = a_record(body=body)
    assert decode_record(encode_record(record)) == record


def test_a_clock_at_1970_is_recorded_as_such_not_refused() -> None:
    record = a_record(time_ms=0, clock=ClockState.UNSET)
    assert decode_record(encode_record(record)).clock is ClockState.UNSET


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"device": "bus 17"}, "device id"),
        ({"seq": 0}, "seq"),
        ({"seq": True}, "seq"),
        ({"prev": b"short"}, "prev"),
        ({"time_ms": -1}, "time_ms"),
        ({"time_ms": 1.5}, "time_ms"),
    ],
)
def test_headers_are_validated_on_construction(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        a_record(**changes)


def test_tap_outcome_and_reason_must_agree() -> None:
    with pytest.raises(InvalidValueError, match="cannot carry"):
        dataclasses.replace(accepted_tap(), reason=Reason.STOPLISTED)
    with pytest.raises(InvalidValueError, match="no fare"):
        dataclasses.replace(denied_tap(), fare=Money(0, "KZT"))
    with pytest.raises(InvalidValueError, match="never negative"):
        accepted_tap(fare=-1)
    with pytest.raises(InvalidValueError, match="sorted"):
        dataclasses.replace(accepted_tap(), flags=("stale", "clock_drift"))


def test_a_fare_fits_in_64_signed_bits() -> None:
    assert accepted_tap(fare=2**63 - 1).fare == Money(2**63 - 1, "KZT")
    with pytest.raises(InvalidValueError, match="64 signed bits"):
        accepted_tap(fare=2**63)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ((), None),
        (("stale",), None),
        (("clock_drift", "stale"), None),
        (("stale", "stale"), "sorted and unique"),
        (("stale", "clock_drift"), "sorted and unique"),
        (("Stale",), "short lower-case codes"),
        (("",), "short lower-case codes"),
        (("a", 1), "short lower-case codes"),
    ],
)
def test_flags_are_short_codes_sorted_and_unique(
    flags: tuple[str, ...], message: str | None
) -> None:
    if message is None:
        assert dataclasses.replace(accepted_tap(), flags=flags).flags == flags
    else:
        with pytest.raises(InvalidValueError, match=message):
            dataclasses.replace(accepted_tap(), flags=flags)


def test_event_detail_is_validated() -> None:
    with pytest.raises(InvalidValueError):
        Event(EventKind.BOOT, (("b", 1), ("a", 2)))
    with pytest.raises(InvalidValueError):
        Event(EventKind.BOOT, (("ok", True),))
    assert Event(EventKind.BOOT, (("n", -(2**63)), ("p", 2**63 - 1))).detail[1][1] == 2**63 - 1
    for outside in (2**63, -(2**63) - 1, 2**64 - 1):
        with pytest.raises(InvalidValueError, match="64 signed bits"):
            Event(EventKind.BOOT, (("n", outside),))


def test_an_event_detail_beyond_64_signed_bits_is_refused_on_the_wire() -> None:
    wire = record_to_wire(dataclasses.replace(a_record(), body=Event(EventKind.BOOT)))
    wire["evt"] = {"kind": "boot", "detail": {"n": 2**63}}
    with pytest.raises(DecodeError, match="64 signed bits"):
        decode_record(cbor.encode(wire))


def wire_with(drop: str | None = None, **changes: cbor.Value) -> bytes:
    wire = record_to_wire(a_record())
    wire.update(changes)
    wire.pop(drop or "", None)
    return cbor.encode(wire)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (wire_with(v=2), "unknown version 2"),
        (wire_with(drop="seq"), "missing field"),
        (wire_with(extra=1), "unknown field"),
        (wire_with(seq="7"), r"record.seq: expected an integer"),
        (wire_with(clk="wobbly"), r"record.clk: unknown value"),
        (wire_with(prev=b"\x00" * 31), "prev must be 32 bytes"),
        (encode_record(a_record()) + b"\x00", "trailing bytes"),
        (b"\xa0", "record.v: expected an integer, got nothing"),
        (b"\x80", "expected a map"),
    ],
)
def test_malformed_bytes_raise_one_decode_error(raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_record(raw)


def test_a_non_canonical_encoding_is_refused() -> None:
    raw = encode_record(a_record())
    # Re-encode the first map header in a longer form than needed: same value, other bytes.
    longer = b"\xb8" + bytes([raw[0] - 0xA0]) + raw[1:]
    with pytest.raises(DecodeError, match="deterministic"):
        decode_record(longer)


def test_encoded_record_keeps_bytes_and_digest() -> None:
    entry = EncodedRecord.of(a_record())
    again = EncodedRecord.parse(entry.raw)
    assert again == entry
    assert len(entry.digest) == 32


def test_records_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        a_record().seq = 9  # type: ignore[misc]
