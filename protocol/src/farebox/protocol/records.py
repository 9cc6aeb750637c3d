"""Journal records on the wire: their canonical bytes, and the strict decoder.

A record (a value from `farebox.protocol.record_values`, re-exported here) has one canonical
encoding (deterministic CBOR, see docs/protocol.md). Every key is always present; an absent
optional value is CBOR null. `EncodedRecord` keeps a record together with its canonical
bytes and their SHA-256, so that the hash chain and the server's audit store work on the
exact bytes the device signed over.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import itemgetter
from typing import Self, TypeVar

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.frozen import quick_init
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


@quick_init
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

    @classmethod
    def parse_all(cls, raws: Sequence[bytes]) -> list[Self]:
        """`parse` of each of `raws`, checked together where all are canonical (faster)."""
        records = cbor.decode_exact_all(raws, _record_as_sent)
        if records is None:
            return [cls.parse(raw) for raw in raws]
        return [cls(record, raw) for record, raw in zip(records, raws, strict=True)]


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
_EVENT_KEYS = frozenset({"kind", "detail"})


def decode_record(raw: bytes) -> Record:
    """Parse canonical record bytes; anything else raises DecodeError."""
    record = cbor.decode_exact(raw, _record_as_sent)
    return _decode_checked(raw) if record is None else record


# The fast path: bytes exactly as `encode_record` writes them, which is what validators
# send. Every map must hold its keys in deterministic order and every item must be of the
# exact type cbor2 hands back; the values are then built by the same constructors as on
# the full path, so the same rules validate them. Anything else raises ValueError or
# KeyError, and the full path says what is wrong. Every integer is kept within 64 bits, as
# `cbor.decode_exact` requires, by its validator (`seq`, `t`, `tv`, `sv`, the fare), by
# the version check, or by `cbor.is_ordered` (an event's detail).

_TAP_RECORD_ORDER = cbor.key_order(_RECORD_KEYS["tap"])
_EVENT_RECORD_ORDER = cbor.key_order(_RECORD_KEYS["evt"])
_LOCATION_ORDER = cbor.key_order(_LOCATION_KEYS)
_TAP_ORDER = cbor.key_order(_TAP_KEYS)
_EVENT_ORDER = cbor.key_order(_EVENT_KEYS)
_header_items = itemgetter("v", "dev", "seq", "prev", "t", "clk", "loc")
_location_items = itemgetter("route", "veh", "stop")
_tap_items = itemgetter(
    "media", "token", "type", "out", "why", "fare", "prod", "cat", "tv", "sv", "flags"
)
E = TypeVar("E", bound=StrEnum)


def _members(kind: type[E]) -> dict[str, E]:
    return {member.value: member for member in kind}


_CLOCKS = _members(ClockState)
_MEDIA = _members(MediaKind)
_TAP_TYPES = _members(TapType)
_OUTCOMES = _members(Outcome)
_REASONS = _members(Reason)
_EVENT_KINDS = _members(EventKind)
_OPTIONAL_TEXT = frozenset({str, type(None)})
# A validator's records repeat their location and their fares: share those immutable
# values. The caches key on exact types, so a hit was validated with equal input.
_location = functools.lru_cache(maxsize=4096, typed=True)(Location)
_money = functools.lru_cache(maxsize=256, typed=True)(Money)


def _record_as_sent(value: object) -> Record:
    """The record in `value`, decoded from bytes as `encode_record` writes them."""
    if type(value) is not dict:
        raise ValueError("not a map")
    keys = tuple(value)
    if keys == _TAP_RECORD_ORDER:
        body: Tap | Event = _tap_as_sent(value["tap"])
    elif keys == _EVENT_RECORD_ORDER:
        body = _event_as_sent(value["evt"])
    else:
        raise ValueError("not a record's keys in order")
    version, device, seq, prev, time_ms, clock, loc = _header_items(value)
    if type(version) is not int or version != RECORD_VERSION:
        raise ValueError("not this record version")
    if type(clock) is not str:  # a dict lookup alone takes anything equal to a key
        raise ValueError("not a clock state")
    if type(loc) is not dict or tuple(loc) != _LOCATION_ORDER:
        raise ValueError("not a location's keys in order")
    parts = _location_items(loc)
    if not _OPTIONAL_TEXT.issuperset(map(type, parts)):  # and the cache hashes them
        raise ValueError("not a location's text")
    return Record(device, seq, prev, time_ms, _CLOCKS[clock], _location(*parts), body)


def _tap_as_sent(tap: object) -> Tap:
    if type(tap) is not dict or tuple(tap) != _TAP_ORDER:
        raise ValueError("not a tap's keys in order")
    items = _tap_items(tap)
    media, token, tap_type, outcome, reason, fare, product, category, tv, sv, flags = items
    if not (type(media) is type(tap_type) is type(outcome) is type(reason) is str):
        raise ValueError("not a tap's kinds")
    if fare is not None:
        if type(fare) is not list:
            raise ValueError("not a fare")
        minor, currency = fare  # ValueError unless exactly two items
        if type(minor) is not int or type(currency) is not str:
            raise ValueError("not a fare")
        fare = _money(minor, currency)
    if type(flags) is not list:
        raise ValueError("not a list of flags")
    return Tap(
        _MEDIA[media], token, _TAP_TYPES[tap_type], _OUTCOMES[outcome], _REASONS[reason], fare,
        product, category, tv, sv, tuple(flags),
    )  # fmt: skip


def _event_as_sent(evt: object) -> Event:
    if type(evt) is not dict or tuple(evt) != _EVENT_ORDER:
        raise ValueError("not an event's keys in order")
    kind, detail = evt["kind"], evt["detail"]
    if type(kind) is not str or type(detail) is not dict or not cbor.is_ordered(detail):
        raise ValueError("not an event's kind and detail")
    for key in detail:
        if type(key) is not str:
            raise ValueError("not an event detail key")
    return Event(_EVENT_KINDS[kind], tuple(sorted(detail.items())))


# The full path: every check, in an order that names what is wrong.


def _decode_checked(raw: bytes) -> Record:
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
    evt = fields.nested("evt", _EVENT_KEYS)
    detail = evt.mapping("detail")
    pairs: list[tuple[str, str | int]] = []
    for key, value in detail.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, str | int):
            raise DecodeError("record.evt.detail: keys are strings, values strings or ints")
        pairs.append((key, value))
    return Event(evt.enum("kind", EventKind), tuple(sorted(pairs)))
