"""`farebox-sim card` and `farebox-sim scanner` as processes, read by the agent's adapters."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from farebox.agent.presentation import CardRemoved, Presentation
from farebox.agent.readers.base import Backoff, HealthState
from farebox.agent.readers.nfc import NfcReader
from farebox.agent.readers.scanner import ScannerReader
from tests.agent.readers.conftest import Collector, wait_for_health

pytestmark = pytest.mark.integration
FAST = Backoff(first=0.05, most=0.2)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "farebox.simulators.cli", *args],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(5)
        assert process.stdout is not None
        process.stdout.close()


async def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 10)
    return line.strip()


async def test_cards_from_a_file_are_tapped_in_turn(
    processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    cards = [
        {"technology": "type2", "uid": "04a1b2c3d4e5f6", "payload": "FB1:FIRST"},
        {"technology": "type4", "uid": "08112233", "apdu": "cafe"},
    ]
    (tmp_path / "cards.json").write_text(json.dumps(cards))
    process = start("card", "--file", str(tmp_path / "cards.json"), "--wait", "0.5", "--gap", "0.5")
    processes.append(process)
    path = await first_line(process)
    assert path.startswith("udp:127.0.0.1:")
    reader = NfcReader("gate-3", path, targets=("106A",), backoff=FAST)
    collector = Collector()
    reader.start(asyncio.get_running_loop(), collector)
    try:
        seen: list[tuple[bytes | None, bytes | None]] = []
        while len(seen) < 2:
            event = await collector.next(10)
            if isinstance(event, Presentation):
                seen.append((event.uid, event.payload))
            else:
                assert isinstance(event, CardRemoved)
        assert seen == [
            (bytes.fromhex("04a1b2c3d4e5f6"), b"FB1:FIRST"),
            (bytes.fromhex("08112233"), bytes.fromhex("cafe")),
        ]
    finally:
        assert reader.stop()
    assert await asyncio.wait_for(asyncio.to_thread(process.wait), 10) == 0


async def test_the_scanner_simulator_types_its_arguments_into_a_pty(
    processes: list[subprocess.Popen[str]],
) -> None:
    process = start("scanner", "--aim", "--wait", "1", "--interval", "0.05", "FB1:A", "FB1:B")
    processes.append(process)
    path = await first_line(process)
    assert path.startswith("/dev/pts/")
    reader = ScannerReader("gate-3", path, backoff=FAST)
    collector = Collector()
    reader.start(asyncio.get_running_loop(), collector)
    try:
        await wait_for_health(reader, HealthState.READY)
        texts = []
        for _ in range(2):
            event = await collector.next(10)
            assert isinstance(event, Presentation)
            texts.append(event.text)
        assert texts == ["FB1:A", "FB1:B"]
        # the simulator exits and so unplugs: the adapter reports it and keeps running
        await wait_for_health(reader, HealthState.UNAVAILABLE, within=10)
    finally:
        assert reader.stop()


async def test_card_needs_a_uid_or_a_file(processes: list[subprocess.Popen[str]]) -> None:
    process = start("card")
    processes.append(process)
    assert await asyncio.wait_for(asyncio.to_thread(process.wait), 10) != 0
