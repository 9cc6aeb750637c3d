"""The NFC adapter end to end: simulated cards over UDP on 127.0.0.1, stock nfcpy, the adapter.

Each test names only the technology it taps: every technology that does not answer
costs nfcpy's UDP driver a 1 s wait. USB readers and libusb cannot exist here, so their
failures are produced by a stand-in for `nfc.ContactlessFrontend`, and say so.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Callable, Iterator
from typing import Any

import nfc
import pytest
from pytest_mock import MockerFixture

from farebox.agent.presentation import CardRemoved, CardTechnology, Media, Presentation
from farebox.agent.readers.base import Backoff, HealthState, ThreadedReader
from farebox.agent.readers.nfc import NfcReader
from farebox.simulators.card import Card, CardEmulator
from tests.agent.readers.conftest import Collector, wait_for_health

RunReader = Callable[[ThreadedReader], Collector]
FAST = Backoff(first=0.05, most=0.2)
TICKET = b"FB1:6BF-ticket-text"
TYPE2 = Card(CardTechnology.TYPE2, bytes.fromhex("04a1b2c3d4e5f6"), TICKET)
TYPE3 = Card(CardTechnology.TYPE3, bytes.fromhex("012e4cd1a2b3c4d5"), TICKET)
TYPE4 = Card(CardTechnology.TYPE4, bytes.fromhex("08112233"), None, apdu=b"pass-bytes")
TYPE4B = Card(CardTechnology.TYPE4, bytes.fromhex("0a0b0c0d"), TICKET, type_b=True)
BRTY = {CardTechnology.TYPE2: "106A", CardTechnology.TYPE3: "212F", CardTechnology.TYPE4: "106A"}


@pytest.fixture
def emulator() -> Iterator[CardEmulator]:
    with CardEmulator() as running:
        yield running


def reader_for(emulator: CardEmulator, *technologies: CardTechnology) -> NfcReader:
    targets = tuple(dict.fromkeys(BRTY[kind] for kind in technologies))
    return NfcReader("bus-7", emulator.path, targets=targets, backoff=FAST)


async def tap(collector: Collector, emulator: CardEmulator, card: Card) -> Presentation:
    emulator.place(card)
    event = await collector.next()
    assert isinstance(event, Presentation)
    emulator.remove()
    removed = await collector.next()
    assert isinstance(removed, CardRemoved)
    assert removed.uid == card.uid
    assert removed.read_at.monotonic >= event.read_at.monotonic
    return event


@pytest.mark.parametrize(
    "card", [TYPE2, TYPE3, TYPE4, TYPE4B], ids=["type2", "type3", "type4a", "type4b"]
)
async def test_each_card_type_gives_uid_technology_and_payload(
    run_reader: RunReader, emulator: CardEmulator, card: Card
) -> None:
    target = "106B" if card.type_b else BRTY[card.technology]
    reader = NfcReader("bus-7", emulator.path, targets=(target,), backoff=FAST)
    collector = run_reader(reader)
    await wait_for_health(reader, HealthState.READY)
    presentation = await tap(collector, emulator, card)
    assert presentation.media is Media.NFC
    assert presentation.reader_id == "bus-7"
    assert presentation.uid == card.uid
    assert presentation.token == f"nfc:{card.uid.hex()}"
    assert presentation.technology is card.technology
    assert presentation.payload == (card.apdu or card.payload)
    assert not presentation.clash
    assert collector.threads == {threading.get_ident()}  # handed over on the loop thread


async def test_a_card_without_payload_is_its_uid_alone(
    run_reader: RunReader, emulator: CardEmulator
) -> None:
    reader = reader_for(emulator, CardTechnology.TYPE2)
    collector = run_reader(reader)
    plain = Card(CardTechnology.TYPE2, bytes.fromhex("04000000000001"))
    presentation = await tap(collector, emulator, plain)
    assert presentation.uid == plain.uid
    assert presentation.payload is None


async def test_successive_taps_are_each_read_once(
    run_reader: RunReader, emulator: CardEmulator
) -> None:
    reader = reader_for(emulator, CardTechnology.TYPE2)
    collector = run_reader(reader)
    others = [Card(CardTechnology.TYPE2, bytes([4, 0, 0, 0, 0, 0, n])) for n in range(3)]
    uids = [(await tap(collector, emulator, card)).uid for card in others]
    assert uids == [card.uid for card in others]
    await asyncio.sleep(0.2)
    assert collector.queue.empty()


async def test_two_cards_in_the_field_are_a_clash_not_a_guess(
    run_reader: RunReader, emulator: CardEmulator
) -> None:
    reader = reader_for(emulator, CardTechnology.TYPE2)
    collector = run_reader(reader)
    second = Card(CardTechnology.TYPE2, bytes.fromhex("04ffffffffff01"))
    emulator.place(TYPE2, second)
    event = await collector.next()
    assert isinstance(event, Presentation)
    assert event.clash
    assert event.uid in (TYPE2.uid, second.uid)
    await asyncio.sleep(0.2)
    assert collector.queue.empty()  # one refusal while the cards stay, not one per poll
    emulator.remove()
    assert isinstance(await collector.next(), CardRemoved)
    assert (await tap(collector, emulator, TYPE2)).clash is False


async def test_cards_of_two_technologies_are_a_clash(
    run_reader: RunReader, emulator: CardEmulator
) -> None:
    reader = reader_for(emulator, CardTechnology.TYPE2, CardTechnology.TYPE3)
    collector = run_reader(reader)
    emulator.place(TYPE2, TYPE3)
    event = await collector.next()
    assert isinstance(event, Presentation)
    assert event.clash
    emulator.remove()
    assert isinstance(await collector.next(), CardRemoved)


async def test_stop_is_prompt_while_nfcpy_waits_for_a_card(
    run_reader: RunReader, emulator: CardEmulator
) -> None:
    reader = reader_for(emulator, CardTechnology.TYPE2, CardTechnology.TYPE3)
    run_reader(reader)
    await wait_for_health(reader, HealthState.READY)
    await asyncio.sleep(0.3)  # inside a sense, which waits 1 s per silent technology
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert reader.stop()
    assert loop.time() - started < 0.5
    assert reader.health.state is HealthState.STOPPED


def failing_frontend(errors: list[BaseException]) -> Callable[[str], Any]:
    """Stand-in for nfc.ContactlessFrontend: raises each error once, then opens for real."""
    real = nfc.ContactlessFrontend

    def open_frontend(path: str) -> Any:
        if errors:
            raise errors.pop(0)
        return real(path)

    return open_frontend


@pytest.mark.parametrize(
    ("error", "path", "message"),
    [
        (FileNotFoundError(2, "No such file"), "usb", "libusb not found"),
        (OSError(errno.EACCES, "Permission denied"), "usb:054c:06c3", "udev rule"),
        (OSError(errno.ENODEV, "No such device"), "tty:USB0:pn532", "no reader on"),
        (OSError(errno.EBUSY, "Device busy"), "usb:072f:2200", "blacklist"),
    ],
)
async def test_missing_libusb_permissions_and_unplugged_readers_are_reported_then_retried(
    run_reader: RunReader,
    emulator: CardEmulator,
    mocker: MockerFixture,
    error: OSError,
    path: str,
    message: str,
) -> None:
    # No USB reader or libusb exists here: a stand-in raises what nfcpy raises for them.
    mocker.patch("nfc.ContactlessFrontend", side_effect=failing_frontend([error, error]))
    reader = NfcReader("bus-7", path, targets=("106A",), backoff=FAST)
    collector = run_reader(reader)
    health = await wait_for_health(reader, HealthState.UNAVAILABLE)
    assert message in health.message
    reader.path = emulator.path  # the reader comes back (plugged in, rule installed)
    await wait_for_health(reader, HealthState.READY)
    assert reader.health.failures == 0
    assert (await tap(collector, emulator, TYPE2)).uid == TYPE2.uid


async def test_a_reader_unplugged_mid_shift_comes_back(
    run_reader: RunReader, emulator: CardEmulator, mocker: MockerFixture
) -> None:
    # The UDP driver never goes away; its sense is made to fail as an unplugged USB does.
    real = nfc.ContactlessFrontend
    opened: list[Any] = []

    def open_frontend(path: str) -> Any:
        frontend = real(path)
        if not opened:
            mocker.patch.object(
                frontend, "sense", side_effect=OSError(errno.ENODEV, "No such device")
            )
        opened.append(frontend)
        return frontend

    mocker.patch("nfc.ContactlessFrontend", side_effect=open_frontend)
    reader = reader_for(emulator, CardTechnology.TYPE2)
    collector = run_reader(reader)
    health = await wait_for_health(reader, HealthState.UNAVAILABLE)
    assert "no reader on" in health.message
    await wait_for_health(reader, HealthState.READY)
    assert (await tap(collector, emulator, TYPE2)).uid == TYPE2.uid
    assert len(opened) == 2
