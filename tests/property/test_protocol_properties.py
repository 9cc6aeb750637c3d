"""Algebraic properties of the wire formats and the chain."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farebox.protocol.chain import Cursor, verify_segment
from farebox.protocol.checkpoint import (
    Checkpoint,
    decode_checkpoint,
    encode_checkpoint,
    sign_checkpoint,
)
from farebox.protocol.enrollment import decode_enroll_request, decode_enrollment
from farebox.protocol.errors import (
    ChainError,
    DecodeError,
    ForkError,
    GapError,
    InvalidValueError,
    SignatureError,
)
from farebox.protocol.heartbeat import decode_heartbeat
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import Batch, RefusalCode, decode_message, encode_message
from farebox.protocol.packages import decode_package
from farebox.protocol.records import EncodedRecord, Record, decode_record, encode_record
from farebox.protocol.session import Accepted, Duplicate, Refused, judge
from farebox.protocol.stoplist import decode_stoplist_change
from tests.support.strategies import chains, records

KEY = SigningKey.from_seed(b"\x17" * 32)


@given(records)
def test_records_round_trip_byte_for_byte(record: Record) -> None:
    raw = encode_record(record)
    assert decode_record(raw) == record
    assert encode_record(decode_record(raw)) == raw


DECODERS: list[Callable[[bytes], object]] = [
    decode_record,
    decode_enroll_request,
    decode_enrollment,
    decode_heartbeat,
    decode_message,
    decode_checkpoint,
    decode_package,
    decode_stoplist_change,
]


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.__name__)
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(
    decoder: Callable[[bytes], object], data: bytes
) -> None:
    with contextlib.suppress(DecodeError):
        decoder(data)


def _signed(entries: list[EncodedRecord]) -> Batch:
    last = entries[-1]
    checkpoint = Checkpoint(last.record.device, last.record.seq, last.digest, 1)
    return Batch(last.record.device, tuple(entries), sign_checkpoint(checkpoint, KEY))


@given(chains(max_size=4), st.data())
def test_any_flipped_byte_in_a_batch_is_detected(
    entries: list[EncodedRecord], data: st.DataObject
) -> None:
    raw = encode_message(_signed(entries))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    bit = data.draw(st.integers(0, 7), label="bit")
    flipped = bytearray(raw)
    flipped[index] ^= 1 << bit
    try:
        batch = decode_message(bytes(flipped))
    except DecodeError:
        return
    assert isinstance(batch, Batch)
    judgement = judge(Cursor.start(batch.device), batch, KEY.verify_key)
    assert not isinstance(judgement, Accepted), "a changed batch was accepted"


@given(st.binary(min_size=32, max_size=32), st.integers(1, 2**40), st.data())
def test_any_flipped_byte_in_a_checkpoint_is_detected(
    head: bytes, seq: int, data: st.DataObject
) -> None:
    raw = encode_checkpoint(sign_checkpoint(Checkpoint("bus-017", seq, head, 7), KEY))
    index = data.draw(st.integers(0, len(raw) - 1))
    flipped = bytearray(raw)
    flipped[index] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises((DecodeError, SignatureError)):
        decode_checkpoint(bytes(flipped)).verify(KEY.verify_key)


@given(chains(min_size=3), st.data())
def test_chain_verification_finds_every_gap(
    entries: list[EncodedRecord], data: st.DataObject
) -> None:
    dropped = data.draw(st.integers(0, len(entries) - 2))
    device = entries[0].record.device
    with pytest.raises(GapError):
        verify_segment(Cursor.start(device), device, entries[:dropped] + entries[dropped + 1 :])


@given(chains(min_size=2), st.data())
def test_chain_verification_finds_every_reorder(
    entries: list[EncodedRecord], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(entries) - 2))
    j = data.draw(st.integers(i + 1, len(entries) - 1))
    swapped = list(entries)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    device = entries[0].record.device
    with pytest.raises(ChainError):
        verify_segment(Cursor.start(device), device, swapped)


@given(chains(min_size=1), st.data(), st.binary(min_size=32, max_size=32))
def test_chain_verification_finds_every_fork(
    entries: list[EncodedRecord], data: st.DataObject, other: bytes
) -> None:
    i = data.draw(st.integers(0, len(entries) - 1))
    record = entries[i].record
    if other == record.prev:
        return
    forked = list(entries)
    try:
        forked[i] = EncodedRecord.of(
            Record(
                record.device,
                record.seq,
                other,
                record.time_ms,
                record.clock,
                record.location,
                record.body,
            )
        )
    except InvalidValueError:
        return
    device = record.device
    with pytest.raises(ForkError):
        verify_segment(Cursor.start(device), device, forked)


@given(chains(min_size=1, max_size=10), st.data())
def test_judge_against_any_cursor_and_any_slice(
    entries: list[EncodedRecord], data: st.DataObject
) -> None:
    """The server's verdict for records i..j against a cursor at k, for every i, j, k."""
    n = len(entries)
    k = data.draw(st.integers(0, n), label="cursor")
    i = data.draw(st.integers(1, n), label="first")
    j = data.draw(st.integers(i, n), label="last")
    device = entries[0].record.device
    cursor = Cursor.start(device) if k == 0 else Cursor(k, entries[k - 1].digest)
    judgement = judge(cursor, _signed(entries[i - 1 : j]), KEY.verify_key)
    if j <= k:
        assert judgement == Duplicate(Cursor(j, entries[j - 1].digest))
    elif i <= k + 1:
        assert judgement == Accepted(tuple(entries[k:j]), Cursor(j, entries[j - 1].digest))
    else:
        assert isinstance(judgement, Refused)
        assert judgement.code is RefusalCode.GAP
