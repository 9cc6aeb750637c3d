"""Real readers, run by hand on a validator: never in CI (marker `hardware`).

    FAREBOX_TEST_NFC_PATH=usb:054c:06c3 .venv/bin/pytest -c tests/pytest.ini -m hardware \\
        tests/agent/readers/test_hardware.py      # then tap a card within 20 s
    FAREBOX_TEST_SCANNER_URL=/dev/ttyACM0 ...      # then scan any QR code within 20 s

Each test is skipped unless its variable names a device.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from farebox.agent.presentation import Media, Presentation
from farebox.agent.readers.base import HealthState, ThreadedReader
from farebox.agent.readers.nfc import NfcReader
from farebox.agent.readers.scanner import ScannerReader
from tests.agent.readers.conftest import Collector, wait_for_health

pytestmark = pytest.mark.hardware
NFC_PATH = "FAREBOX_TEST_NFC_PATH"
SCANNER_URL = "FAREBOX_TEST_SCANNER_URL"


def device(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to run against a real device")
    return value


async def test_a_real_nfc_reader_reads_a_tapped_card(
    run_reader: Callable[[ThreadedReader], Collector],
) -> None:
    reader = NfcReader("hardware", device(NFC_PATH))
    collector = run_reader(reader)
    await wait_for_health(reader, HealthState.READY, within=10)
    event = await collector.next(within=20)
    assert isinstance(event, Presentation)
    assert event.media is Media.NFC
    assert event.uid


async def test_a_real_scanner_reads_a_scan(
    run_reader: Callable[[ThreadedReader], Collector],
) -> None:
    reader = ScannerReader("hardware", device(SCANNER_URL))
    collector = run_reader(reader)
    await wait_for_health(reader, HealthState.READY, within=10)
    event = await collector.next(within=20)
    assert isinstance(event, Presentation)
    assert event.text
