"""Taps the ledger cannot post are set aside with their reason, never a wall in their
device's chain: the batch is taken, its other fares posted, and the operator posts the
rest once the cause is mended."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import secrets
from pathlib import Path

import pytest

from farebox.protocol.chain import Cursor
from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.enrollment import DeviceKind
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import Batch
from farebox.protocol.money import Money
from farebox.protocol.records import ClockState, EncodedRecord, Location, MediaKind, Record
from farebox.server.cli import main
from farebox.server.ledger.accounts import Channel, KnownAccounts
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.posting import TopUp
from farebox.server.ledger.store import Session, Store, open_store
from farebox.server.sync import devices
from farebox.server.sync.devices import Nonce
from farebox.server.sync.fares import Books, Carriers
from farebox.server.sync.ingest import ingest
from farebox.server.sync.set_aside import repost, set_aside_taps
from tests.server.conftest import ALMATY
from tests.server.sync.conftest import Device, Server
from tests.server.sync.test_device_api import batch, count
from tests.support.records import MORNING_MS, accepted_tap

FARES = "SELECT count(*) FROM transfers WHERE kind = 'fare'"
MISNAMED = Books(ALMATY, carriers=Carriers(default="-city"))


def journal(
    device: str, rides: list[tuple[str, str]], start: Cursor | None = None
) -> list[EncodedRecord]:
    """One accepted tap per (token, route), a minute apart, continuing `start`."""
    cursor, entries = start or Cursor.start(device), []
    for n, (token, route) in enumerate(rides):
        record = Record(device, cursor.seq + 1, cursor.head, MORNING_MS + n * 60_000,
                        ClockState.SYNCED, Location(route=route, vehicle=device),
                        accepted_tap(token))  # fmt: skip
        entries.append(EncodedRecord.of(record))
        cursor = cursor.after(entries[-1])
    return entries


async def test_routes_named_as_the_city_names_them_are_posted(
    server: Server, device: Device
) -> None:
    rides = [("nfc:01", "12 A"), ("nfc:02", "Маршрут 5"), ("nfc:03", "12")]
    assert await device.acked(batch(device, journal(device.id, rides))) == 3
    assert await count(server, FARES) == 3
    assert await count(server, "SELECT count(*) FROM accounts WHERE kind = 'revenue'") == 3


async def test_a_tap_the_ledger_cannot_name_is_set_aside_and_the_chain_goes_on(
    server: Server, device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    first = journal(device.id, [("nfc:01", "12"), ("nfc:02", "12\n"), ("nfc:03", "12")])
    with caplog.at_level(logging.ERROR, logger="farebox.server.sync.ingest"):
        assert await device.acked(batch(device, first)) == 3
    assert any("1 taps set aside" in message for message in caplog.messages)
    assert await count(server, FARES) == 2
    (aside,) = await server.store.run(set_aside_taps, 10)
    assert aside[:2] == (device.id, 2)
    assert "route" in aside[2]
    async with device.http.get(f"{server.url}metrics") as response:
        assert "\nfarebox_taps_set_aside 1\n" in await response.text()
    later = journal(device.id, [("nfc:04", "12")], Cursor(3, first[-1].digest))
    assert await device.acked(batch(device, later)) == 4
    assert await count(server, FARES) == 3


async def test_text_a_store_cannot_hold_is_set_aside_on_either_store(
    server: Server, device: Device
) -> None:
    # PostgreSQL's text refuses NUL: a stop, a category or a QR token carrying one.
    taps = [
        (accepted_tap("nfc:01"), "abay\x00ave"),
        (dataclasses.replace(accepted_tap("nfc:02"), category="a\x00"), "abay-ave"),
        (dataclasses.replace(accepted_tap(), media=MediaKind.QR, token="qr:\x00"), "abay-ave"),
    ]
    cursor, entries = Cursor.start(device.id), []
    for tap, stop in taps:
        record = Record(device.id, cursor.seq + 1, cursor.head, MORNING_MS, ClockState.SYNCED,
                        Location(route="12", stop=stop), tap)  # fmt: skip
        entries.append(EncodedRecord.of(record))
        cursor = cursor.after(entries[-1])
    assert await device.acked(batch(device, entries)) == 3
    assert [seq for _, seq, *_ in await server.store.run(set_aside_taps, 10)] == [1, 2, 3]
    assert await count(server, "SELECT count(*) FROM ticket_uses") == 0


async def test_a_rider_account_of_another_currency_holds_up_only_its_own_tap(
    server: Server, device: Device
) -> None:
    ledger = Ledger(server.store, ALMATY)
    await ledger.top_up(TopUp("nfc:usd", Money(500, "USD"), Channel.KIOSK, "k-1", MORNING_MS))
    rides = [("nfc:01", "12"), ("nfc:02", "12"), ("nfc:usd", "12"), ("nfc:03", "12")]
    first = journal(device.id, rides)
    assert await device.acked(batch(device, first)) == 4
    assert await count(server, FARES) == 3  # the others are posted part by part at once
    (aside,) = await server.store.run(set_aside_taps, 10)
    assert aside[:2] == (device.id, 3)
    assert "currency" in aside[2]
    # The next batch posts its own fares again, not the earlier batch's tap once more.
    later = journal(device.id, [("nfc:04", "12"), ("nfc:usd", "12")], Cursor(4, first[-1].digest))
    assert await device.acked(batch(device, later)) == 6
    assert [seq for _, seq, *_ in await server.store.run(set_aside_taps, 10)] == [3, 6]
    async with device.http.get(f"{server.url}metrics") as response:
        assert '\nfarebox_ledger_postings_total{kind="fare"} 4\n' in await response.text()
    assert await ledger.violations() == []


async def set_aside_five(store: Store) -> KnownAccounts:
    """Five taps of bus-9 ingested with a carrier named in a way the ledger refuses: every
    fare is set aside."""
    await store.migrate()
    key = SigningKey.generate()
    token = await store.run(devices.create_token, "bus-9", DeviceKind.BUS, MORNING_MS, 10**9)
    await store.run(devices.enroll, token, key.verify_key, MORNING_MS)
    entries = journal("bus-9", [(f"nfc:{n:02x}", "12") for n in range(5)])
    signed = sign_checkpoint(Checkpoint("bus-9", 5, entries[-1].digest, MORNING_MS), key)
    upload = Batch("bus-9", tuple(entries), signed)
    known = KnownAccounts()
    nonce = Nonce(secrets.token_bytes(16), 300_000)
    ingested = await ingest(store, MISNAMED, upload, MORNING_MS, known, nonce, key.verify_key)
    assert (ingested.records, ingested.postings, ingested.unposted) == (5, 0, 5)
    return known


async def test_taps_set_aside_are_posted_once_when_the_cause_is_mended(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        known = await set_aside_five(store)
        assert await repost(store, MISNAMED, known, MORNING_MS) == 0  # still refused
        assert len(await store.run(set_aside_taps, 10)) == 5
        mended = dataclasses.replace(MISNAMED, carriers=Carriers(default="city"))
        assert await repost(store, mended, known, MORNING_MS) == 5
        assert await repost(store, mended, known, MORNING_MS) == 0
        assert await store.run(set_aside_taps, 10) == []

        async def fares(session: Session) -> int:
            ((n,),) = await session.fetch(FARES)
            return int(n)

        assert await store.run(fares) == 5
        assert await Ledger(store, ALMATY).violations() == []
    finally:
        await store.close()


def test_the_operator_lists_and_reposts_them_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'server.db'}"

    async def prepare() -> None:
        store = await open_store(url)
        try:
            await set_aside_five(store)
        finally:
            await store.close()

    asyncio.run(prepare())
    out = io.StringIO()
    assert main(["taps", "list", "--db", url], out) == 0
    listed = json.loads(out.getvalue())
    assert [(tap["device"], tap["seq"]) for tap in listed] == [("bus-9", n) for n in range(1, 6)]
    assert "carrier" in listed[0]["reason"]
    out = io.StringIO()
    assert main(["taps", "repost", "--db", url], out) == 0  # FAREBOX_CARRIER: "city"
    assert out.getvalue() == "5 taps posted; 0 still set aside (see taps list)\n"
    assert main(["ledger", "verify", "--db", url], io.StringIO()) == 0
