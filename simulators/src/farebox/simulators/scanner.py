"""A simulated serial QR scanner: a pseudo-terminal pair that the agent opens as its port.

The simulator holds the pty's master side and "types" scans into it; the agent opens the
slave path with pyserial exactly as it opens `/dev/ttyACM0`. Closing the master is what an
unplug looks like to the agent. `link` keeps a stable path (a symlink, like udev's
`/dev/serial/by-id/...`) across unplug and replug, since each pty gets a new name.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

TERMINATORS = {"crlf": b"\r\n", "cr": b"\r", "lf": b"\n", "none": b""}


class ScannerSimulator:
    """One simulated scanner; `plug()` creates its pty, `scan()` types, `unplug()` removes it."""

    def __init__(
        self, *, link: Path | None = None, terminator: bytes = b"\r\n", aim: bool = False
    ) -> None:
        self.link = link
        self.terminator = terminator
        self.aim = aim
        self._master: int | None = None
        self._slave: int | None = None
        self.device_path = ""

    def plug(self) -> str:
        """Create the pty and return the path the agent should open (the link if given)."""
        if self._master is not None:
            raise RuntimeError("the simulated scanner is already plugged in")
        self._master, self._slave = os.openpty()
        # Raw at once: otherwise the line discipline turns CR into LF before the agent looks.
        tty.setraw(self._slave)
        self.device_path = os.ttyname(self._slave)
        if self.link is None:
            return self.device_path
        staging = self.link.with_name(self.link.name + ".new")
        staging.unlink(missing_ok=True)
        staging.symlink_to(self.device_path)
        staging.replace(self.link)
        return str(self.link)

    def scan(self, text: str) -> None:
        """Type one scan: the AIM prefix if enabled, the text, and the terminator."""
        self.type_bytes((b"]Q1" if self.aim else b"") + text.encode() + self.terminator)

    def type_bytes(self, data: bytes) -> None:
        """Send raw bytes, for garbage and framing tests."""
        if self._master is None:
            raise RuntimeError("the simulated scanner is unplugged")
        view = memoryview(data)
        while view:
            view = view[os.write(self._master, view) :]

    def unplug(self) -> None:
        """Close both sides of the pty: the agent's next read fails as on a real unplug."""
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> ScannerSimulator:
        self.plug()
        return self

    def __exit__(self, *_: object) -> None:
        self.unplug()


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `farebox-sim scanner`."""
    parser = commands.add_parser(
        "scanner",
        help="a simulated serial QR scanner on a pty",
        description="Create a pty, print the device path for the agent, and type scans into "
        "it: from arguments, then a file, then (with --stdin) standard input, one per line.",
    )
    parser.add_argument("scans", nargs="*", help="texts to scan, in order")
    parser.add_argument("--file", type=Path, help="a file of scans, one per line")
    parser.add_argument("--stdin", action="store_true", help="then scan lines from stdin")
    parser.add_argument("--link", type=Path, help="a stable symlink to the device")
    parser.add_argument("--terminator", choices=sorted(TERMINATORS), default="crlf")
    parser.add_argument("--aim", action="store_true", help="prefix each scan with ]Q1")
    parser.add_argument("--wait", type=float, default=1.0, help="seconds before the first scan")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between scans")
    parser.add_argument("--hold", type=float, default=0.5, help="seconds before unplugging")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    simulator = ScannerSimulator(
        link=args.link, terminator=TERMINATORS[args.terminator], aim=args.aim
    )
    with simulator:
        out.write(f"{args.link or simulator.device_path}\n")
        out.flush()
        time.sleep(args.wait)  # time for the agent to open the port
        for text in _scans(args):
            simulator.scan(text)
            time.sleep(args.interval)
        time.sleep(args.hold)  # time for the agent to read the last scan
    return 0


def _scans(args: argparse.Namespace) -> Iterator[str]:
    yield from args.scans
    if args.file is not None:
        yield from args.file.read_text().splitlines()
    if args.stdin:
        yield from (line.rstrip("\r\n") for line in sys.stdin)
