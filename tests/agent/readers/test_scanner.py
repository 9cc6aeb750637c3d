"""The scanner adapter end to end: a simulated scanner on a real pty, pyserial, the adapter.

Every wait is bounded by a timeout; the only device is the pty pair.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import serial

from farebox.agent.presentation import Media, Presentation
from farebox.agent.readers.base import Backoff, HealthState, ThreadedReader
from farebox.agent.readers.scanner import LineFramer, ScannerReader, scan_text
from farebox.simulators.scanner import ScannerSimulator
from tests.agent.readers.conftest import Collector, wait_for_health

RunReader = Callable[[ThreadedReader], Collector]
FAST = Backoff(first=0.05, most=0.2)


async def texts(collector: Collector, count: int) -> list[str]:
    got = []
    for _ in range(count):
        event = await collector.next()
        assert isinstance(event, Presentation)
        assert event.media is Media.QR
        assert event.reader_id == "gate-1"
        got.append(event.text or "")
    return got


async def test_scans_framed_by_cr_lf_and_crlf_arrive_in_order(run_reader: RunReader) -> None:
    with ScannerSimulator(terminator=b"\r\n") as scanner:
        reader = ScannerReader("gate-1", scanner.device_path, backoff=FAST)
        collector = run_reader(reader)
        await wait_for_health(reader, HealthState.READY)
        scanner.scan("FB1:ONE")
        scanner.type_bytes(b"FB1:TWO\rFB1:THREE\nFB1:FOUR\r\n\r\n")
        assert await texts(collector, 4) == ["FB1:ONE", "FB1:TWO", "FB1:THREE", "FB1:FOUR"]
        assert collector.threads == {threading.get_ident()}  # handed over on the loop thread


async def test_a_scanner_without_terminator_is_framed_by_the_idle_gap(
    run_reader: RunReader,
) -> None:
    with ScannerSimulator(terminator=b"", aim=True) as scanner:
        reader = ScannerReader("gate-1", scanner.device_path, idle_gap_s=0.05, backoff=FAST)
        collector = run_reader(reader)
        await wait_for_health(reader, HealthState.READY)
        scanner.scan("FB1:FIRST")
        assert await texts(collector, 1) == ["FB1:FIRST"]  # the AIM prefix ]Q1 is gone
        scanner.scan("FB1:SECOND")
        assert await texts(collector, 1) == ["FB1:SECOND"]


async def test_garbage_and_over_long_lines_reach_the_decision_and_reading_goes_on(
    run_reader: RunReader,
) -> None:
    with ScannerSimulator() as scanner:
        reader = ScannerReader("gate-1", scanner.device_path, max_line=64, backoff=FAST)
        collector = run_reader(reader)
        await wait_for_health(reader, HealthState.READY)
        scanner.type_bytes(b"\xff\xfe\x00garbage\r\n" + b"X" * 10_000 + b"\r\n")
        scanner.scan("FB1:AFTER")
        garbage, long, after = await texts(collector, 3)
        assert garbage == "\ufffd\ufffd\x00garbage"
        assert long == "X" * 64
        assert after == "FB1:AFTER"
        assert reader.health.state is HealthState.READY


async def test_unplug_is_reported_and_the_same_path_reconnects(
    run_reader: RunReader, tmp_path: Path
) -> None:
    link = tmp_path / "scanner"
    first = ScannerSimulator(link=link)
    reader = ScannerReader("gate-1", str(first.plug()), backoff=FAST)
    collector = run_reader(reader)
    await wait_for_health(reader, HealthState.READY)
    first.scan("FB1:BEFORE")
    assert await texts(collector, 1) == ["FB1:BEFORE"]

    first.unplug()
    health = await wait_for_health(reader, HealthState.UNAVAILABLE)
    assert str(link) in health.message

    with ScannerSimulator(link=link) as second:
        await wait_for_health(reader, HealthState.READY)
        second.scan("FB1:AFTER")
        assert await texts(collector, 1) == ["FB1:AFTER"]


async def test_a_missing_port_is_unavailable_with_a_clear_message(
    run_reader: RunReader, tmp_path: Path
) -> None:
    reader = ScannerReader("gate-1", str(tmp_path / "ttyACM9"), backoff=FAST)
    run_reader(reader)
    health = await wait_for_health(reader, HealthState.UNAVAILABLE)
    assert "no scanner at" in health.message
    assert "USB serial (CDC) mode" in health.message
    await asyncio.sleep(0.3)
    assert reader.health.failures >= 2  # it keeps retrying


async def test_stop_is_prompt_and_final(run_reader: RunReader) -> None:
    with ScannerSimulator() as scanner:
        reader = ScannerReader("gate-1", scanner.device_path, backoff=FAST)
        run_reader(reader)
        await wait_for_health(reader, HealthState.READY)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert reader.stop()
        assert loop.time() - started < 0.5
        assert reader.health.state is HealthState.STOPPED


def test_the_framer_joins_chunks_and_treats_crlf_as_one_end() -> None:
    framer = LineFramer(max_line=8)
    assert framer.feed(b"ab") == []
    assert framer.feed(b"c\r") == [b"abc"]
    assert framer.feed(b"\nd") == []
    assert framer.flush() == [b"d"]
    assert framer.flush() == []
    assert framer.feed(b"0123456789abc\rok\n") == [b"01234567", b"ok"]


def test_scan_text_strips_any_aim_identifier_only_at_the_start() -> None:
    assert scan_text(b"]Q1FB1:X") == "FB1:X"
    assert scan_text(b"]d2data") == "data"
    assert scan_text(b"FB1:]Q1") == "FB1:]Q1"
    assert scan_text(b"]Q1FB1:X", strip_aim=False) == "]Q1FB1:X"


def test_a_port_without_permission_names_the_group_to_join() -> None:
    # Tests run as root here, so a real permission error cannot be produced: this is
    # the message pyserial gives for one.
    error = serial.SerialException(
        "[Errno 13] could not open port /dev/ttyACM0: [Errno 13] Permission denied"
    )
    message = ScannerReader("gate-1", "/dev/ttyACM0")._explain(error)
    assert "dialout" in message
