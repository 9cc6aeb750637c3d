"""QR scanners on a serial line (USB CDC, UART, or a pty in tests) through pyserial.

A scanner sends one scan per line. Most end it with CR, LF or CRLF; some (GM65 units
among them) send no terminator, so a pause of `idle_gap_s` with no byte also ends a scan.
An optional AIM symbology identifier (`]Q1` for QR) is removed. A line longer than
`max_line` is cut there and the rest up to its terminator dropped, so a stuck or hostile
device cannot grow memory; the cut text still goes to the decision, which refuses it.

The port is opened with `serial.serial_for_url`, so `/dev/ttyACM0`, a udev symlink such
as `/dev/serial/by-id/...`, and `hwgrep://VID:PID` all work. An unplugged scanner
surfaces as SerialException; the adapter reports it and reopens the same URL with backoff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import serial

from farebox.agent.presentation import Media, Presentation
from farebox.agent.readers.base import Backoff, HealthState, ThreadedReader, read_time

_AIM = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_TERMINATORS = b"\r\n"


@dataclass(slots=True)
class LineFramer:
    """Bytes from a scanner in, scanned lines out; pure, so it is tested without a port."""

    max_line: int = 4096
    _buffer: bytearray = field(default_factory=bytearray)
    _overflow: bool = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every line a terminator completed."""
        lines: list[bytes] = []
        for byte in data:
            if byte in _TERMINATORS:
                lines += self.flush()
            elif self._overflow:
                continue
            elif len(self._buffer) >= self.max_line:
                self._overflow = True
            else:
                self._buffer.append(byte)
        return lines

    def flush(self) -> list[bytes]:
        """End the current line (a terminator or an idle gap); empty lines are dropped."""
        line = bytes(self._buffer)
        self._buffer.clear()
        self._overflow = False
        return [line] if line else []


def scan_text(line: bytes, *, strip_aim: bool = True) -> str:
    """The text of one scanned line: decoded, an AIM identifier removed."""
    # Tickets are ASCII; a byte that is not UTF-8 becomes U+FFFD, which no ticket has,
    # so garbage still reaches the decision as text it will refuse.
    text = line.decode("utf-8", errors="replace")
    if strip_aim and _AIM.match(text):
        text = text[3:]
    return text


class ScannerReader(ThreadedReader):
    """A serial QR scanner; each scan becomes a QR Presentation."""

    def __init__(
        self,
        reader_id: str,
        url: str,
        *,
        baudrate: int = 9600,
        idle_gap_s: float = 0.05,
        max_line: int = 4096,
        strip_aim: bool = True,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(reader_id, backoff)
        self.url = url
        self.baudrate = baudrate
        self.idle_gap_s = idle_gap_s
        self.max_line = max_line
        self.strip_aim = strip_aim

    def _session(self) -> None:
        # The read timeout is the idle gap: an empty read means the line went quiet.
        port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=self.idle_gap_s)
        framer = LineFramer(self.max_line)
        with port:
            self._set_health(HealthState.READY, f"scanner open on {self.url}")
            while not self._stopping.is_set():
                chunk = port.read(max(1, port.in_waiting))
                lines = framer.feed(chunk) if chunk else framer.flush()
                for line in lines:
                    self._deliver(
                        Presentation(
                            reader_id=self.reader_id,
                            media=Media.QR,
                            read_at=read_time(),
                            text=scan_text(line, strip_aim=self.strip_aim),
                        )
                    )

    def _wake(self) -> None:
        """Nothing to cut short: every read returns within one idle gap."""

    def _explain(self, error: BaseException) -> str:
        if isinstance(error, PermissionError) or "Permission denied" in str(error):
            return f"no permission to open {self.url}: add the agent's user to 'dialout'"
        if isinstance(error, FileNotFoundError) or "No such file" in str(error):
            return f"no scanner at {self.url}: unplugged, or not in USB serial (CDC) mode"
        return f"scanner on {self.url} failed: {error}"
