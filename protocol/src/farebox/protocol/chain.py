"""The per-device hash chain: every record names the SHA-256 of the one before it.

A device's chain starts from a genesis value derived from its id; record n holds the hash
of record n-1's canonical bytes. The server keeps a cursor per device (the last seq it
holds and that record's hash) and accepts only records that continue from it, so one
signature over the head of a batch covers every record in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from farebox.protocol.errors import ChainError, ForkError, GapError
from farebox.protocol.records import (
    EncodedRecord,
    Record,
    check_device_id,
    check_hash,
    check_seq,
    encode_record,
)

GENESIS_DOMAIN = b"farebox/genesis/v1\x00"


def genesis(device: str) -> bytes:
    """The value record 1 of `device` names as its previous hash."""
    return hashlib.sha256(GENESIS_DOMAIN + check_device_id(device).encode()).digest()


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a chain is known: the last seq held (0 for none) and that record's hash."""

    seq: int
    head: bytes

    def __post_init__(self) -> None:
        check_seq(self.seq, allow_zero=True)
        check_hash(self.head, "head")

    @classmethod
    def start(cls, device: str) -> Self:
        return cls(0, genesis(device))

    def after(self, entry: EncodedRecord) -> Cursor:
        return Cursor(entry.record.seq, entry.digest)


def link(prev_hash: bytes, record: Record) -> bytes:
    """Check that `record` follows `prev_hash` and return the hash the next record names."""
    if record.prev != prev_hash:
        raise ForkError(
            f"record {record.seq} names another previous record",
            expected_seq=record.seq,
            expected_prev=prev_hash,
        )
    return hashlib.sha256(encode_record(record)).digest()


def verify_segment(cursor: Cursor, device: str, entries: Sequence[EncodedRecord]) -> Cursor:
    """Check that `entries` continue the chain of `device` from `cursor`; return the new cursor.

    Raises GapError if a seq is skipped, ForkError if a record names a previous hash other
    than the chain's, and ChainError for a repeated or reordered seq or another device's
    record. Each error carries the seq and previous hash the chain expected next.
    """
    # The position is carried as plain values and made a Cursor once, at the end: a
    # Cursor per record re-checked what decoding had already checked, 500 times a batch.
    seq, head = cursor.seq, cursor.head
    for entry in entries:
        record = entry.record
        expected = seq + 1
        if record.device != device:
            raise ChainError(
                f"record {record.seq} belongs to device {record.device!r}, not {device!r}",
                expected_seq=expected,
                expected_prev=head,
            )
        if record.seq > expected:
            raise GapError(
                f"expected seq {expected}, got {record.seq}",
                expected_seq=expected,
                expected_prev=head,
            )
        if record.seq < expected:
            raise ChainError(
                f"seq {record.seq} repeated or out of order (expected {expected})",
                expected_seq=expected,
                expected_prev=head,
            )
        if record.prev != head:
            raise ForkError(
                f"record {record.seq} does not continue the chain",
                expected_seq=expected,
                expected_prev=head,
            )
        seq, head = record.seq, entry.digest
    return Cursor(seq, head) if entries else cursor
