"""A stateful property of the journal: whatever the order of taps, crashes (the database
closed and reopened, torn transactions abandoned) and acknowledgements, no committed
record is lost, no unacknowledged record is pruned, seq has no gaps and the chain verifies."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from farebox.agent.store.state import Store
from farebox.protocol.chain import Cursor
from farebox.protocol.records import ClockState, EncodedRecord, Reason
from tests.support.records import MORNING_MS, ROUTE_12, accepted_tap, denied_tap

DEVICE = "bus-017"


class JournalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="farebox-journal-"))
        self.path = self.directory / "agent.db"
        self.store = Store.open(self.path, DEVICE, lock_timeout_ms=1000)
        self.committed: list[EncodedRecord] = []
        self.acked = 0
        self.pruned_through = 0
        self.now = MORNING_MS

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(accepted=st.booleans(), token=st.sampled_from(["nfc:01", "nfc:02", "qr:aa"]))
    def tap(self, accepted: bool, token: str) -> None:
        self.now += 1000
        body = accepted_tap(token) if accepted else denied_tap(token, Reason.STOPLISTED)
        entry = self.store.record(self.now, ClockState.SYNCED, ROUTE_12, body, remember=True)
        self.committed.append(entry)

    @rule()
    def crash(self) -> None:
        self.store.close()
        self.store = Store.open(self.path, DEVICE, lock_timeout_ms=1000)

    @rule(data=st.binary(min_size=1, max_size=64))
    def torn_write(self, data: bytes) -> None:
        # A write that never committed (power cut mid-transaction) leaves no trace.
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO journal (seq, raw, digest, time_ms) VALUES (?, ?, ?, 0)",
            (len(self.committed) + 1, data, bytes(32)),
        )
        conn.close()
        self.crash()

    @precondition(lambda self: len(self.committed) > self.acked)
    @rule(data=st.data())
    def acknowledge(self, data: st.DataObject) -> None:
        through = data.draw(st.integers(self.acked + 1, len(self.committed)))
        entry = self.committed[through - 1]
        self.now += 1000
        self.store.acknowledge(Cursor(through, entry.digest), self.now)
        self.acked = through

    @rule()
    def prune(self) -> None:
        self.now += 1000
        self.store.prune(self.now, retention_ms=0, history_ms=10**9)
        # Everything acknowledged is gone but the newest record, which the chain needs.
        self.pruned_through = max(self.pruned_through, min(self.acked, len(self.committed) - 1))

    @invariant()
    def nothing_committed_is_lost(self) -> None:
        head = self.committed[-1] if self.committed else None
        expected = Cursor.start(DEVICE) if head is None else Cursor(head.record.seq, head.digest)
        assert self.store.cursor == expected
        assert self.store.verify() == expected
        pending = self.store.pending(10_000)
        assert [e.raw for e in pending] == [e.raw for e in self.committed[self.acked :]]
        assert self.store.acked.seq == self.acked

    @invariant()
    def unacked_records_are_never_pruned(self) -> None:
        figures = self.store.figures()
        assert figures.kept >= len(self.committed) - self.acked
        assert figures.kept == len(self.committed) - self.pruned_through


TestJournal = JournalMachine.TestCase
# Each step commits with synchronous=FULL or reopens the database; 20 steps an example keep
# the CI profile's 300 examples near half a minute while still mixing every rule.
TestJournal.settings = settings(stateful_step_count=20)
