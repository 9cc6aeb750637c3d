"""A walk through the protocol core: one bus, the day's first taps, one sync, in memory.

It runs the real protocol code on both sides (the device's Uploader, the server's judge),
with nothing installed and no network, and tells what happens at each step: records
chained, a batch signed once, a resend that posts nothing twice, a forged and a gapped
batch refused, and a signed stoplist delta checked before it is applied.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TextIO, TypeVar

from farebox.protocol.chain import Cursor
from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.errors import PackageError
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import Batch, decode_message, encode_message
from farebox.protocol.money import Money
from farebox.protocol.packages import PackageKind, decode_package, encode_package, sign_package
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
from farebox.protocol.session import (
    Accepted,
    Acknowledged,
    Duplicate,
    Refused,
    Uploader,
    answer,
    judge,
)
from farebox.protocol.stoplist import StoplistChange, StoplistChecksum, encode_stoplist_change

DEVICE = "bus-017"
START_MS = 1_795_669_200_000  # 2026-11-26 05:00 UTC, 10:00 in Almaty
RIDERS = [
    ("nfc:04a1b2c3d4e5f6", 20000, "adult"),
    ("nfc:04b7c8d9e0f1a2", 10000, "student"),
    ("nfc:04c3d4e5f6a7b8", 0, "pensioner"),
    ("qr:t-20261126-0042", 20000, "adult"),
]
STOPLISTED = "nfc:0400deadbeef01"
LOST_CARD = "nfc:04ffee0011aa22"

T = TypeVar("T")


class DemoError(RuntimeError):
    """The protocol did not answer as the walk-through expects."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("demo", help="walk through the protocol core in memory")
    parser.set_defaults(handler=lambda _args, out: run(out))


def _expect(value: object, kind: type[T]) -> T:
    if not isinstance(value, kind):
        raise DemoError(f"expected {kind.__name__}, got {value!r}")
    return value


def _tap(token: str, fare: int | None, category: str | None) -> Tap:
    media = MediaKind.QR if token.startswith("qr:") else MediaKind.NFC
    if fare is None:
        return Tap(media, token, TapType.SINGLE, Outcome.DENY, Reason.STOPLISTED, None, None,
                   None, 3, 41)  # fmt: skip
    return Tap(media, token, TapType.SINGLE, Outcome.ACCEPT, Reason.OK, Money(fare, "KZT"),
               "single", category, 3, 41)  # fmt: skip


def _journal() -> list[EncodedRecord]:
    location = Location(route="12", vehicle=DEVICE, stop="abay-ave")
    bodies: list[Tap | Event] = [Event.of(EventKind.BOOT, firmware="1.0.0")]
    bodies += [_tap(token, fare, category) for token, fare, category in RIDERS]
    bodies.append(_tap(STOPLISTED, None, None))
    cursor, entries = Cursor.start(DEVICE), []
    for offset, body in enumerate(bodies):
        time_ms = START_MS + offset * 20_000
        record = Record(DEVICE, cursor.seq + 1, cursor.head, time_ms, ClockState.SYNCED,
                        location, body)  # fmt: skip
        entries.append(EncodedRecord.of(record))
        cursor = cursor.after(entries[-1])
    return entries


def _describe(entry: EncodedRecord) -> str:
    body = entry.record.body
    if isinstance(body, Event):
        what = f"event {body.kind}"
    else:
        fare = "" if body.fare is None else str(body.fare)
        what = f"{body.outcome} {body.token} {fare} ({body.reason})"
    return f"   seq {entry.record.seq}: {what:<52} {len(entry.raw)} B, {entry.digest.hex()[:12]}"


def _sign(entries: list[EncodedRecord], key: SigningKey) -> Batch:
    last = entries[-1]
    checkpoint = Checkpoint(DEVICE, last.record.seq, last.digest, last.record.time_ms)
    return Batch(DEVICE, tuple(entries), sign_checkpoint(checkpoint, key))


def run(out: TextIO) -> int:
    """Run the walk-through, writing what happens to `out`; return the exit status."""

    def say(line: str = "") -> None:
        out.write(line + "\n")

    device_key, server_key = SigningKey.generate(), SigningKey.generate()
    say("farebox protocol walk-through (the city simulation will take this command's place)")
    say()
    say(f"1. {DEVICE} journals its first records; its Ed25519 key id is {device_key.key_id.hex()}")
    journal = _journal()
    for entry in journal:
        say(_describe(entry))

    uploader, cursor = Uploader(DEVICE, Cursor.start(DEVICE)), Cursor.start(DEVICE)
    batch = _expect(uploader.next_batch(journal, device_key, START_MS + 600_000), Batch)
    wire = encode_message(batch)
    say()
    say(f"2. one batch: {len(batch.entries)} records, {len(wire)} B, one signature")
    received = _expect(decode_message(wire), Batch)
    accepted = _expect(judge(cursor, received, device_key.verify_key), Accepted)
    cursor = accepted.cursor
    fares = [e.record.body.fare for e in accepted.new if isinstance(e.record.body, Tap)]
    total = sum((fare for fare in fares if fare is not None), Money.zero("KZT"))
    say(f"   server: {len(accepted.new)} new records, fares {total}, cursor at {cursor.seq}")
    acked = uploader.receive(answer(DEVICE, accepted, cursor, START_MS + 601_000))
    say(f"   device: acknowledged through {_expect(acked, Acknowledged).cursor.seq}")

    say()
    _expect(judge(cursor, received, device_key.verify_key), Duplicate)
    say("3. the same batch again (its ack was lost): a duplicate; nothing is posted twice")
    no_signature = dataclasses.replace(received.checkpoint, signature=bytes(64))
    forged = dataclasses.replace(received, checkpoint=no_signature)
    refused = _expect(judge(Cursor.start(DEVICE), forged, device_key.verify_key), Refused)
    say(f"4. a forged batch: refused ({refused.code}): {refused.message}")
    gapped = _sign(journal[3:], device_key)
    refused = _expect(judge(Cursor.start(DEVICE), gapped, device_key.verify_key), Refused)
    say(f"5. a batch that skips records: refused ({refused.code}): {refused.message}")

    held = {STOPLISTED}
    delta = StoplistChange(
        full=False, added=frozenset({LOST_CARD}), removed=frozenset({STOPLISTED})
    )
    result = StoplistChecksum.of((held | delta.added) - delta.removed).digest()
    payload = encode_stoplist_change(delta)
    signed = sign_package(PackageKind.STOPLIST, 42, 41, result, payload, server_key)
    package = decode_package(encode_package(signed)).verify([server_key.verify_key])
    package.check_base(41)
    package.check_result(StoplistChecksum.of(held).add(delta.added).remove(delta.removed).digest())
    say()
    say(f"6. stoplist 41->42, signed and checked: {STOPLISTED} leaves, {LOST_CARD} joins")
    try:
        package.check_base(40)
    except PackageError as error:
        say(f"   on a validator still at 40: {error}")
    say()
    say("Every record posted once; every forgery refused.")
    return 0
