"""Journal records as values: what a validator writes for every tap and every event.

A record is a frozen value, validated on construction: the header every record has (device,
seq, the previous record's hash, time, clock state, location) and a tap or an event. Its
canonical bytes, and the decoder that reads them back, are in `farebox.protocol.records`,
which also re-exports everything here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from farebox.protocol.errors import InvalidValueError
from farebox.protocol.frozen import quick_init
from farebox.protocol.money import Money

HASH_SIZE = 32
MAX_SEQ = 2**63 - 1
MAX_TIME_MS = 2**53 - 1
EARLIEST_PLAUSIBLE_MS = 1_704_067_200_000
"""2024-01-01 UTC: a clock, a validator's or a server's, that reads earlier has lost its
time (a flat RTC battery, no NTP yet) and cannot be right."""

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


@quick_init
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
        if self.fare is not None:
            if self.outcome is Outcome.DENY:
                raise InvalidValueError("a denied tap carries no fare")
            if self.fare.minor < 0:
                raise InvalidValueError("a fare is never negative")
            if self.fare.minor > MAX_SEQ:
                raise InvalidValueError("a fare must fit in 64 signed bits")
        # A plain loop, not any() over a generator, and no sort for fewer than two flags:
        # this runs for every tap decoded, and most taps have no flags.
        for flag in self.flags:
            if not isinstance(flag, str) or not _CODE.fullmatch(flag):
                raise InvalidValueError(f"flags must be short lower-case codes, got {self.flags!r}")
        if len(self.flags) > 1 and list(self.flags) != sorted(set(self.flags)):
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
            if isinstance(value, int) and not -MAX_SEQ - 1 <= value <= MAX_SEQ:
                raise InvalidValueError(f"event detail {key!r} must fit in 64 signed bits")
        keys = [key for key, _ in self.detail]
        if keys != sorted(set(keys)):
            raise InvalidValueError("event detail keys must be sorted and unique")

    @classmethod
    def of(cls, kind: EventKind, **detail: str | int) -> Self:
        return cls(kind, tuple(sorted(detail.items())))


@quick_init
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
