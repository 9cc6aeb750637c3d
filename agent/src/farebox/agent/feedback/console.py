"""Console feedback: one line per indication on a text stream (stdout by default).

The line is machine-readable as well, `ACCEPT seq=12 token=nfc:04a1 | OK 200.00 KZT`, so
that tests and a bench rig can follow what riders were shown.
"""

from __future__ import annotations

import sys
from typing import TextIO

from farebox.agent.feedback import Indication


class ConsoleFeedback:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout

    def show(self, indication: Indication) -> None:
        head = "ACCEPT" if indication.accepted else "DENY"
        if indication.seq is None:
            head = "SERVICE"
        parts = [head, f"reason={indication.reason.value}"]
        if indication.seq is not None:
            parts.append(f"seq={indication.seq}")
        if indication.token is not None:
            parts.append(f"token={indication.token}")
        if indication.open_gate:
            parts.append("gate=open")
        self._stream.write(" ".join(parts) + f" | {indication.display}\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
