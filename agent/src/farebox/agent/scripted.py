"""A scripted reader: presentations from lines of text, for tests, benches and rigs.

One line per presentation, from a file or from standard input ('-'):

    nfc <uid hex>           a card tap
    clash <uid hex>         a tap with a second card in the field
    qr <text>               a QR scan

Blank lines and lines starting with '#' are skipped; a malformed line is logged and
skipped. It runs on its own thread like the hardware readers, so the runtime treats it
exactly as it treats them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

from farebox.agent.presentation import CardTechnology, Media, Presentation, ReadTime
from farebox.agent.readers.base import HealthState, ThreadedReader, read_time

log = logging.getLogger(__name__)


def parse_line(reader_id: str, line: str, read_at: ReadTime) -> Presentation | None:
    """The presentation a script line stands for; None for a blank or comment line."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    kind, _, rest = line.partition(" ")
    rest = rest.strip()
    if kind == "qr":
        return Presentation(reader_id, Media.QR, read_at, text=rest)
    if kind in ("nfc", "clash"):
        return Presentation(
            reader_id,
            Media.NFC,
            read_at,
            uid=bytes.fromhex(rest),
            technology=CardTechnology.TYPE2,
            clash=kind == "clash",
        )
    raise ValueError(f"unknown presentation kind {kind!r}")


class ScriptedReader(ThreadedReader):
    """Reads presentations from a script until it ends or the reader is stopped."""

    def __init__(self, reader_id: str, source: str) -> None:
        super().__init__(reader_id)
        self._source = source

    def _open(self) -> TextIO:
        if self._source == "-":
            return sys.stdin
        return Path(self._source).open(encoding="utf-8")

    def _session(self) -> None:
        stream = self._open()
        self._set_health(HealthState.READY, f"reading {self._source}")
        try:
            for line in stream:
                if self._stopping.is_set():
                    break
                try:
                    presentation = parse_line(self.reader_id, line, read_time())
                except ValueError as error:
                    log.warning("reader %s: skipped %r: %s", self.reader_id, line, error)
                    continue
                if presentation is not None:
                    self._deliver(presentation)
        finally:
            if stream is not sys.stdin:
                stream.close()
        # The script is over: wait to be stopped rather than reading it again.
        self._stopping.wait()

    def _wake(self) -> None:
        # A read blocked on a pipe cannot be cut short portably; the reader thread is a
        # daemon, and `stop` waits for it only briefly, so nothing more is needed here.
        return None
