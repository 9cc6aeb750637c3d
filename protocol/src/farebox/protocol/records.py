"""Journal records on the wire: their canonical bytes, and the strict decoder.

A record (a value from `farebox.protocol.record_values`, re-exported here) has one canonical
encoding (deterministic CBOR, see docs/protocol.md). Every key is always present; an absent
optional value is CBOR null. `EncodedRecord` keeps a record together with its canonical
bytes and their SHA-256, so that the hash chain and the server's audit store work on the
exact bytes the device signed over.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Self

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.record_values import (
    HASH_SIZE,
    MAX_SEQ,
    MAX_TIME_MS,
    ClockState,
    Event,
    EventKind,
    Location,
    MediaKind,
    Outcome,
    Reason,
    Record,
    Tap,
    TapType,
    check_device_id,
    check_hash,
    check_seq,
    check_time_ms,
)
from farebox.protocol.wire import Fields

__all__ = [
    "HASH_SIZE",
    "MAX_SEQ",
    "MAX_TIME_MS",
    "RECORD_VERSION",
    "ClockState",
    "EncodedRecord",
    "Event",
    "EventKind",
    "Location",
    "MediaKind",
    "Outcome",
    "Reason",
    "Record",
    "Tap",
    "TapType",
    "check_device_id",
    "check_hash",
    "check_seq",
    "check_time_ms",
    "decode_record",
    "encode_record",
    "record_to_wire",
]

RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """A record with its canonical bytes and the SHA-256 of those bytes."""

    record: Record
    raw: bytes
    digest: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.raw).digest())

    @classmethod
    def of(cls, record: Record) -> Self:
        return cls(record, encode_record(record))

    @classmethod
    def parse(cls, raw: bytes) -> Self:
        return cls(decode_record(raw), bytes(raw))


def encode_record(record: Record) -> bytes:
    """The canonical bytes of `record` (deterministic CBOR)."""
    return cbor.encode(record_to_wire(record))


def record_to_wire(record: Record) -> dict[str, cbor.Value]:
    loc = record.location
    wire: dict[str, cbor.Value] = {
        "v": RECORD_VERSION,
        "dev": record.device,
        "seq": record.seq,
        "prev": record.prev,
        "t": record.time_ms,
        "clk": record.clock.value,
        "loc": {"route": loc.route, "veh": loc.vehicle, "stop": loc.stop},
    }
    body = record.body
    if isinstance(body, Tap):
        wire["tap"] = {
            "media": body.media.value,
            "token": body.token,
            "type": body.tap_type.value,
            "out": body.outcome.value,
            "why": body.reason.value,
            "fare": None if body.fare is None else [body.fare.minor, body.fare.currency],
            "prod": body.product,
            "cat": body.category,
            "tv": body.tariff_version,
            "sv": body.stoplist_version,
            "flags": list(body.flags),
        }
    else:
        wire["evt"] = {"kind": body.kind.value, "detail": dict(body.detail)}
    return wire


_HEADER_KEYS = frozenset({"v", "dev", "seq", "prev", "t", "clk", "loc"})
_RECORD_KEYS = {body: _HEADER_KEYS | {body} for body in ("tap", "evt")}
_LOCATION_KEYS = frozenset({"route", "veh", "stop"})
_TAP_KEYS = frozenset(
    {"media", "token", "type", "out", "why", "fare", "prod", "cat", "tv", "sv", "flags"}
)


def decode_record(raw: bytes) -> Record:
    """Parse canonical record bytes; anything else raises DecodeError."""
    fields = Fields.of(cbor.decode(raw, "record"), "record")
    version = fields.integer("v")
    if version != RECORD_VERSION:
        raise DecodeError(f"record: unknown version {version}")
    body_key = "tap" if "tap" in fields else "evt"
    fields.expect_keys(_RECORD_KEYS[body_key])
    try:
        loc = fields.nested("loc", _LOCATION_KEYS)
        location = Location(
            loc.optional_text("route"), loc.optional_text("veh"), loc.optional_text("stop")
        )
        body = _decode_tap(fields) if body_key == "tap" else _decode_event(fields)
        return Record(
            device=fields.text("dev"),
            seq=fields.integer("seq"),
            prev=fields.blob("prev"),
            time_ms=fields.integer("t"),
            clock=fields.enum("clk", ClockState),
            location=location,
            body=body,
        )
    except InvalidValueError as error:
        raise DecodeError(f"record: {error}") from None


def _decode_tap(fields: Fields) -> Tap:
    tap = fields.nested("tap", _TAP_KEYS)
    fare_wire = tap.optional_list("fare")
    fare = None
    if fare_wire is not None:
        if (
            len(fare_wire) != 2
            or not isinstance(fare_wire[0], int)
            or isinstance(fare_wire[0], bool)
            or not isinstance(fare_wire[1], str)
        ):
            raise DecodeError("record.tap.fare: expected [minor units, currency]")
        fare = Money(fare_wire[0], fare_wire[1])
    flags = tap.list_of("flags", str)
    return Tap(
        media=tap.enum("media", MediaKind),
        token=tap.text("token"),
        tap_type=tap.enum("type", TapType),
        outcome=tap.enum("out", Outcome),
        reason=tap.enum("why", Reason),
        fare=fare,
        product=tap.optional_text("prod"),
        category=tap.optional_text("cat"),
        tariff_version=tap.integer("tv"),
        stoplist_version=tap.integer("sv"),
        flags=tuple(flags),
    )


def _decode_event(fields: Fields) -> Event:
    evt = fields.nested("evt", {"kind", "detail"})
    detail = evt.mapping("detail")
    pairs: list[tuple[str, str | int]] = []
    for key, value in detail.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, str | int):
            raise DecodeError("record.evt.detail: keys are strings, values strings or ints")
        pairs.append((key, value))
    return Event(evt.enum("kind", EventKind), tuple(sorted(pairs)))
