"""The sans-I/O sync session: what to send, and what an answer means, with no I/O.

Device side, `Uploader` decides the next batch from the records the journal has not yet
seen acknowledged, and turns the server's answer into an event for the I/O shell: records
acknowledged, rewind to the server's cursor, or halt for an operator. Server side,
`judge` compares a batch with the cursor the server holds for the device and says whether
it is new, a duplicate, or refused, without touching storage. Two of them can be wired
together in memory (see tests/protocol/test_session.py), as with h11.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from farebox.protocol.chain import Cursor, verify_segment
from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.errors import (
    ChainError,
    LocalProtocolError,
    SignatureError,
)
from farebox.protocol.keys import SigningKey, VerifyKey
from farebox.protocol.messages import (
    MAX_BATCH_RECORDS,
    Ack,
    Batch,
    Refusal,
    RefusalCode,
)
from farebox.protocol.records import EncodedRecord, check_device_id

# ---------------------------------------------------------------- server side


@dataclass(frozen=True, slots=True)
class Accepted:
    """The batch continues the chain: store `new` and move the cursor to `cursor`."""

    new: tuple[EncodedRecord, ...]
    cursor: Cursor


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Everything in the batch is held already: store nothing, ack through `cursor`.

    `cursor` is the batch's own end, which the server holds: a device that resends a
    shorter batch than the server has seen can check the ack against what it sent, and
    its next batch overlaps the server's cursor and is judged there.
    """

    cursor: Cursor


@dataclass(frozen=True, slots=True)
class Refused:
    """The batch cannot be taken; `code` and `message` say why."""

    code: RefusalCode
    message: str


Judgement = Accepted | Duplicate | Refused


@dataclass(frozen=True, slots=True)
class Links:
    """What judging a batch needs of it, as plain values: its device, its first record's
    seq and previous hash, each record's digest, the seqs of the records that do not name
    the one before them, and what was wrong with its checkpoint's signature, if anything.

    Made by `Links.of` before the server's transaction, which then only compares it with
    the cursor (`judge_links`); a batch's records are consecutive by construction.
    """

    device: str
    first_seq: int
    first_prev: bytes
    digests: tuple[bytes, ...]
    breaks: tuple[int, ...] = ()
    bad_signature: str | None = None

    @classmethod
    def of(cls, batch: Batch, key: VerifyKey) -> Links:
        """The links of `batch`, its checkpoint verified with `key` (one signature)."""
        try:
            batch.checkpoint.verify(key)
            bad_signature = None
        except SignatureError as error:
            bad_signature = str(error)
        entries = batch.entries
        breaks = tuple(
            entry.record.seq
            for before, entry in itertools.pairwise(entries)
            if entry.record.prev != before.digest
        )
        digests = tuple(entry.digest for entry in entries)
        first = entries[0].record
        return cls(batch.device, first.seq, first.prev, digests, breaks, bad_signature)

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.digests) - 1

    @property
    def end(self) -> Cursor:
        return Cursor(self.last_seq, self.digests[-1])


@dataclass(frozen=True, slots=True)
class Continues:
    """The batch continues the chain after its first `held` records, which the server
    holds: store the others and move the cursor to `cursor`."""

    held: int
    cursor: Cursor


def judge(cursor: Cursor, batch: Batch, key: VerifyKey) -> Judgement:
    """Judge `batch` against the server's `cursor` for its device, verifying one signature."""
    judgement = judge_links(cursor, Links.of(batch, key))
    if isinstance(judgement, Continues):
        return Accepted(batch.entries[judgement.held :], judgement.cursor)
    return judgement


def judge_links(cursor: Cursor, links: Links) -> Continues | Duplicate | Refused:
    """Judge a batch by its `links` against the server's `cursor` for its device."""
    if links.bad_signature is not None:
        return Refused(RefusalCode.BAD_SIGNATURE, links.bad_signature)
    skip = cursor.seq - links.first_seq + 1  # records at the start that the server holds
    if skip > 0:
        if links.last_seq <= cursor.seq:
            if links.last_seq == cursor.seq and links.digests[-1] != cursor.head:
                return _differs(links.last_seq)
            return _broken(links.breaks[0]) if links.breaks else Duplicate(links.end)
        if links.digests[skip - 1] != cursor.head:
            return _differs(cursor.seq)
    elif skip < 0:
        return Refused(RefusalCode.GAP, f"expected seq {cursor.seq + 1}, got {links.first_seq}")
    elif links.first_prev != cursor.head:
        return _broken(links.first_seq)
    # Only the new records' links count: those the server holds were judged when they came.
    new_breaks = [seq for seq in links.breaks if seq > cursor.seq]
    return _broken(new_breaks[0]) if new_breaks else Continues(max(skip, 0), links.end)


def _differs(seq: int) -> Refused:
    return Refused(RefusalCode.FORK, f"record {seq} differs from the one the server holds")


def _broken(seq: int) -> Refused:
    return Refused(RefusalCode.FORK, f"record {seq} does not continue the chain")


def answer(
    device: str, judgement: Judgement | Continues, held: Cursor, now_ms: int
) -> Ack | Refusal:
    """The message that answers a judged batch; `held` is the server's cursor for a refusal."""
    if isinstance(judgement, Refused):
        return Refusal(device, judgement.code, judgement.message, held)
    return Ack(device, judgement.cursor, now_ms)


# ---------------------------------------------------------------- device side


class UploaderState(Enum):
    IDLE = "idle"
    AWAITING_ANSWER = "awaiting_answer"
    REWINDING = "rewinding"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The server holds everything through `cursor`: mark those records acked."""

    cursor: Cursor
    server_time_ms: int


@dataclass(frozen=True, slots=True)
class Rewind:
    """The server holds less than it acknowledged (restored from a backup): it asks for
    the records after `cursor`. The shell looks up its own record at `cursor.seq` and
    calls `Uploader.rewind` with its hash; records pruned since cannot be resent."""

    cursor: Cursor


@dataclass(frozen=True, slots=True)
class Resumed:
    """The uploader goes on from `cursor`: the records after it count as unacked again."""

    cursor: Cursor


@dataclass(frozen=True, slots=True)
class Halted:
    """The server and the device disagree about the chain; an operator must look."""

    reason: str


SyncEvent = Acknowledged | Rewind | Resumed | Halted


class Uploader:
    """The device half of the session: one batch in flight at a time."""

    def __init__(self, device: str, acked: Cursor, max_records: int = 500) -> None:
        check_device_id(device)
        if not 0 < max_records <= MAX_BATCH_RECORDS:
            raise LocalProtocolError(f"max_records must be 1..{MAX_BATCH_RECORDS}")
        self.device = device
        self.acked = acked
        self.max_records = max_records
        self.state = UploaderState.IDLE
        self._in_flight: Batch | None = None
        self._rewind_to: Cursor | None = None

    def next_batch(
        self, pending: Sequence[EncodedRecord], key: SigningKey, now_ms: int
    ) -> Batch | None:
        """The batch to send now, from the unacked records after `acked`, or None if none."""
        if self.state is not UploaderState.IDLE:
            raise LocalProtocolError(f"cannot send a batch while {self.state.value}")
        entries = tuple(pending[: self.max_records])
        if not entries:
            return None
        try:
            verify_segment(self.acked, self.device, entries)
        except ChainError as error:
            raise LocalProtocolError(
                f"pending records do not follow the acked cursor: {error}"
            ) from None
        last = entries[-1]
        checkpoint = Checkpoint(self.device, last.record.seq, last.digest, now_ms)
        batch = Batch(self.device, entries, sign_checkpoint(checkpoint, key))
        self._in_flight = batch
        self.state = UploaderState.AWAITING_ANSWER
        return batch

    def transport_failed(self) -> None:
        """The batch may or may not have arrived; the same records go again (idempotent)."""
        self._expect_answer()
        self._in_flight = None
        self.state = UploaderState.IDLE

    def receive(self, message: Ack | Refusal) -> SyncEvent:
        """Turn the server's answer to the batch in flight into what the shell must do."""
        batch = self._expect_answer()
        self._in_flight = None
        if message.device != self.device:
            return self._halt(f"answer for device {message.device!r}")
        if isinstance(message, Ack):
            return self._acked(batch, message)
        held = message.cursor
        if message.code is RefusalCode.GAP and held is not None and held.seq < self.acked.seq:
            self.state = UploaderState.REWINDING
            self._rewind_to = held
            return Rewind(held)
        # A gap at or past the acked cursor cannot come from a server that judged what
        # was sent; like a fork or any other refusal, it needs an operator.
        return self._halt(f"batch refused ({message.code.value}): {message.message}")

    def rewind(self, journal_hash: bytes | None) -> Resumed | Halted:
        """Resume from the server's cursor if the journal's record there has the same hash.

        `journal_hash` is the hash of the journal's record at the Rewind cursor's seq (the
        device's genesis for seq 0), or None if that record was pruned.
        """
        if self.state is not UploaderState.REWINDING or self._rewind_to is None:
            raise LocalProtocolError(f"no rewind pending ({self.state.value})")
        cursor, self._rewind_to = self._rewind_to, None
        if journal_hash != cursor.head:
            return self._halt(
                f"cannot resume from server cursor {cursor.seq}: record differs or is pruned"
            )
        self.acked = cursor
        self.state = UploaderState.IDLE
        return Resumed(cursor)

    def _acked(self, batch: Batch, ack: Ack) -> SyncEvent:
        through = ack.cursor
        if not self.acked.seq <= through.seq <= batch.last_seq:
            return self._halt(
                f"server acked {through.seq}, outside {self.acked.seq}..{batch.last_seq}"
            )
        # The batch starts right after `acked` (next_batch checked), so every seq in range
        # has a hash the device knows; the server must hold the same one.
        if through.seq == self.acked.seq:
            ours = self.acked.head
        else:
            ours = batch.entries[through.seq - batch.first_seq].digest
        if ours != through.head:
            return self._halt(f"server holds another record {through.seq} (fork)")
        self.acked = through
        self.state = UploaderState.IDLE
        return Acknowledged(through, ack.server_time_ms)

    def _expect_answer(self) -> Batch:
        if self.state is not UploaderState.AWAITING_ANSWER or self._in_flight is None:
            raise LocalProtocolError(f"no batch in flight ({self.state.value})")
        return self._in_flight

    def _halt(self, reason: str) -> Halted:
        self.state = UploaderState.HALTED
        return Halted(reason)
