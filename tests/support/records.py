"""Builders of protocol values for tests: taps, events and whole chains."""

from __future__ import annotations

from farebox.protocol.chain import Cursor
from farebox.protocol.money import Money
from farebox.protocol.records import (
    ClockState,
    EncodedRecord,
    Event,
    EventKind,
    Location,
    MediaKind,
    Outcome,
    Reason,
    Record,
    Tap,
    TapType,
)

# 2026-11-26 08:00:00 UTC, a weekday morning peak in Almaty (13:00 local).
MORNING_MS = 1_795_680_000_000
ROUTE_12 = Location(route="12", vehicle="bus-017", stop="abay-ave")


def accepted_tap(token: str = "nfc:04a1b2c3d4e5f6", fare: int = 20000) -> Tap:
    return Tap(
        media=MediaKind.NFC,
        token=token,
        tap_type=TapType.SINGLE,
        outcome=Outcome.ACCEPT,
        reason=Reason.OK,
        fare=Money(fare, "KZT"),
        product="single",
        category="adult",
        tariff_version=3,
        stoplist_version=41,
    )


def denied_tap(token: str = "nfc:0badc0ffee0001", reason: Reason = Reason.STOPLISTED) -> Tap:
    return Tap(
        media=MediaKind.NFC,
        token=token,
        tap_type=TapType.SINGLE,
        outcome=Outcome.DENY,
        reason=reason,
        fare=None,
        product=None,
        category=None,
        tariff_version=3,
        stoplist_version=41,
    )


def chain(
    device: str = "bus-017",
    count: int = 3,
    start: Cursor | None = None,
    time_ms: int = MORNING_MS,
) -> list[EncodedRecord]:
    """`count` records continuing `start` (the genesis by default): a boot, then taps."""
    cursor = start or Cursor.start(device)
    entries: list[EncodedRecord] = []
    for offset in range(count):
        seq = cursor.seq + 1
        body = (
            Event.of(EventKind.BOOT, firmware="1.0.0")
            if seq == 1
            else (accepted_tap() if seq % 4 else denied_tap())
        )
        record = Record(
            device=device,
            seq=seq,
            prev=cursor.head,
            time_ms=time_ms + offset * 1500,
            clock=ClockState.SYNCED,
            location=ROUTE_12,
            body=body,
        )
        entry = EncodedRecord.of(record)
        entries.append(entry)
        cursor = cursor.after(entry)
    return entries
