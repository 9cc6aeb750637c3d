"""Simulated media through the real stacks into the agent's journal.

Card emulator over UDP on 127.0.0.1 -> stock nfcpy -> NfcReader, and a pty scanner ->
pyserial -> ScannerReader, both feeding the agent's runtime on a real SQLite journal.
No tariff or key set is installed, so each tap is a recorded denial with its reason;
what matters here is that each arrives, is journalled, and the agent keeps running.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farebox.agent.presentation import CardTechnology
from farebox.agent.readers.base import Backoff, HealthState
from farebox.agent.readers.nfc import NfcReader
from farebox.agent.readers.scanner import ScannerReader
from farebox.agent.runtime import Runtime
from farebox.agent.store.state import Store
from farebox.protocol.records import Reason
from farebox.protocol.tickets import ticket
from farebox.simulators.card import Card, CardEmulator
from farebox.simulators.scanner import ScannerSimulator
from tests.agent.harness import Recorder, agent_config, until
from tests.support.journal import journal_taps

pytestmark = pytest.mark.integration
FAST = Backoff(first=0.05, most=0.2)


async def test_cards_and_scans_reach_the_journal_with_their_reasons(tmp_path: Path) -> None:
    config = agent_config(tmp_path)
    store = Store.open(config.state.database, config.device_id, lock_timeout_ms=1000)
    stranger = ticket.issue(
        ticket.Ticket(b"\x01" * 8, "nobody", "single", "adult", 1, 0, 0, 2**40),
        Ed25519PrivateKey.generate(),
        kid=b"k1",
    )
    with CardEmulator() as emulator, ScannerSimulator() as scanner:
        nfc_reader = NfcReader("nfc-0", emulator.path, targets=("106A",), backoff=FAST)
        qr_reader = ScannerReader("qr-0", scanner.device_path, backoff=FAST)
        runtime = Runtime(config, store, [nfc_reader, qr_reader], Recorder(config.state.database))
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        try:
            await asyncio.wait_for(runtime.wait_ready(), 10)
            await until(lambda: qr_reader.health.state is HealthState.READY)
            card = Card(CardTechnology.TYPE2, bytes.fromhex("04a1b2c3d4e5f6"))
            emulator.place(card)
            await until(lambda: runtime.taps_handled == 1)
            emulator.remove()
            emulator.place(card, Card(CardTechnology.TYPE4, bytes.fromhex("08112233")))
            await until(lambda: runtime.taps_handled == 2)
            emulator.remove()
            scanner.type_bytes(b"\xff\xfegarbage\r\n")
            scanner.scan(stranger[:-9])  # truncated Base45
            scanner.scan(stranger)  # genuine form, but no trusted key for it
            await until(lambda: runtime.taps_handled == 5)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    taps = journal_taps(config.state.database)
    assert [(tap.token.split(":")[0], tap.reason) for tap in taps] == [
        ("nfc", Reason.NO_TARIFF),
        ("nfc", Reason.CARD_CLASH),
        ("qr", Reason.UNKNOWN_MEDIA),
        ("qr", Reason.UNKNOWN_MEDIA),
        ("qr", Reason.BAD_SIGNATURE),
    ]
    assert taps[0].token == "nfc:04a1b2c3d4e5f6"
