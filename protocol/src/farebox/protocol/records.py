"""Journal records: what a validator writes for every tap and every event.

A record is a frozen value, validated on construction, with one canonical encoding
(deterministic CBOR, see docs/protocol.md). Every key is always present; an absent
optional value is CBOR null. `EncodedRecord` keeps a record together with its canonical
bytes and their SHA-256, so that the hash chain and the server's audit store work on the
exact bytes the device signed over.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.money import Money
from farebox.protocol.wire import Fields

RECORD_VERSION = 1
HASH_SIZE = 32
MAX_SEQ = 2**63 - 1
MAX_TIME_MS = 2**53 - 1

_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CODE = re.compile(r"[a-z0-9_.:-]{1,64}")


class ClockState(StrEnum):
    """How far the validator trusted its own clock when it stamped the record."""

    SYNCED = "synced"
    DRIFTING = "drifting"
    UNSET = "unset"


class MediaKind(StrEnum):
    NFC = "nfc"
    QR = "qr"
    BANK = "bank"


class TapType(StrEnum):
    """A single validation, or the entry or exit half of a tap-on/tap-off journey."""

    SINGLE = "single"
    ON = "on"
    OFF = "off"


class Outcome(StrEnum):
    ACCEPT = "accept"
    DENY = "deny"


class Reason(StrEnum):
    """Why a tap was accepted or denied; a denial is a value, never an exception."""

    OK = "ok"
    STOPLISTED = "stoplisted"
    INSUFFICIENT_PRODUCT = "insufficient_product"
    EXPIRED = "expired"
    ALREADY_USED = "already_used"
    PASSBACK = "passback"
    UNKNOWN_MEDIA = "unknown_media"
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    CLOCK_UNSET = "clock_unset"
    OUT_OF_SERVICE = "out_of_service"
    CARD_CLASH = "card_clash"
    STALE_STOPLIST = "stale_stoplist"
    NO_TARIFF = "no_tariff"


class EventKind(StrEnum):
    BOOT = "boot"
    ROUTE_CHANGE = "route_change"
    CONFIG_APPLIED = "config_applied"
    CLOCK_SET = "clock_set"
    TAMPER = "tamper"
    POWER_RESTORED = "power_restored"


def check_device_id(device: object) -> str:
    """Return `device` if it is a valid device id (1-64 of A-Z a-z 0-9 . _ -)."""
    if not isinstance(device, str) or not _DEVICE_ID.fullmatch(device):
        raise InvalidValueError(f"device id must match {_DEVICE_ID.pattern}, got {device!r}")
    return device


def check_seq(seq: object, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(seq, bool) or not isinstance(seq, int) or not low <= seq <= MAX_SEQ:
        raise InvalidValueError(f"seq must be an int from {low} to 2**63-1, got {seq!r}")
    return seq


def check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise InvalidValueError(f"{what} must be {HASH_SIZE} bytes")
    return value


def check_time_ms(value: object, what: str = "time_ms") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIME_MS:
        raise InvalidValueError(f"{what} must be milliseconds since 1970 UTC, got {value!r}")
    return value


def _check_text(value: object, what: str, *, optional: bool = False, limit: int = 64) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidValueError(f"{what} must be a non-empty string of at most {limit} chars")


def _check_version(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise InvalidValueError(f"{what} must be an int from 0 to 2**63-1, got {value!r}")


def _check_kinds(*pairs: tuple[object, type[StrEnum]]) -> None:
    for value, kind in pairs:
        if not isinstance(value, kind):
            raise InvalidValueError(f"expected a {kind.__name__}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Location:
    """Where the validator stood: route, vehicle, and stop (or turnstile gate)."""

    route: str | None = None
    vehicle: str | None = None
    stop: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.route, "route", optional=True)
        _check_text(self.vehicle, "vehicle", optional=True)
        _check_text(self.stop, "stop", optional=True)


@dataclass(frozen=True, slots=True)
class Tap:
    """A presentation of fare media and the validator's decision on it."""

    media: MediaKind
    token: str
    tap_type: TapType
    outcome: Outcome
    reason: Reason
    fare: Money | None
    product: str | None
    category: str | None
    tariff_version: int
    stoplist_version: int
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_kinds(
            (self.media, MediaKind), (self.tap_type, TapType), (self.outcome, Outcome),
            (self.reason, Reason),
        )  # fmt: skip
        if self.fare is not None and not isinstance(self.fare, Money):
            raise InvalidValueError(f"a fare is Money or None, got {self.fare!r}")
        _check_text(self.token, "token", limit=256)
        _check_text(self.product, "product", optional=True)
        _check_text(self.category, "category", optional=True)
        _check_version(self.tariff_version, "tariff_version")
        _check_version(self.stoplist_version, "stoplist_version")
        if (self.outcome is Outcome.ACCEPT) != (self.reason is Reason.OK):
            raise InvalidValueError(f"outcome {self.outcome} cannot carry reason {self.reason}")
        if self.outcome is Outcome.DENY and self.fare is not None:
            raise InvalidValueError("a denied tap carries no fare")
        if self.fare is not None and self.fare.minor < 0:
            raise InvalidValueError("a fare is never negative")
        if self.fare is not None and self.fare.minor > MAX_SEQ:
            raise InvalidValueError("a fare must fit in 64 signed bits")
        if any(not isinstance(f, str) or not _CODE.fullmatch(f) for f in self.flags):
            raise InvalidValueError(f"flags must be short lower-case codes, got {self.flags!r}")
        if list(self.flags) != sorted(set(self.flags)):
            raise InvalidValueError("flags must be sorted and unique")


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to the validator itself, with string or integer details."""

    kind: EventKind
    detail: tuple[tuple[str, str | int], ...] = ()

    def __post_init__(self) -> None:
        _check_kinds((self.kind, EventKind))
        for key, value in self.detail:
            if not isinstance(key, str) or not _CODE.fullmatch(key):
                raise InvalidValueError(f"event detail key {key!r} is not a short code")
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise InvalidValueError(f"event detail {key!r} must be a string or an int")
        keys = [key for key, _ in self.detail]
        if keys != sorted(set(keys)):
            raise InvalidValueError("event detail keys must be sorted and unique")

    @classmethod
    def of(cls, kind: EventKind, **detail: str | int) -> Self:
        return cls(kind, tuple(sorted(detail.items())))


@dataclass(frozen=True, slots=True)
class Record:
    """One journal entry: the header every record has, and a tap or an event."""

    device: str
    seq: int
    prev: bytes
    time_ms: int
    clock: ClockState
    location: Location
    body: Tap | Event

    def __post_init__(self) -> None:
        check_device_id(self.device)
        check_seq(self.seq)
        check_hash(self.prev, "prev")
        check_time_ms(self.time_ms)
        if not isinstance(self.clock, ClockState):
            raise InvalidValueError(f"clock must be a ClockState, got {self.clock!r}")
        if not isinstance(self.body, Tap | Event):
            raise InvalidValueError("a record's body is a Tap or an Event")


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
