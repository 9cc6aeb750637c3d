from __future__ import annotations

import dataclasses

import pytest

from farebox.protocol.chain import Cursor, genesis, link, verify_segment
from farebox.protocol.errors import ChainError, ForkError, GapError
from farebox.protocol.records import EncodedRecord
from tests.support.records import chain


def test_genesis_is_per_device() -> None:
    assert genesis("bus-017") != genesis("bus-018")
    assert Cursor.start("bus-017") == Cursor(0, genesis("bus-017"))


def test_link_returns_the_hash_the_next_record_names() -> None:
    first, second = chain(count=2)
    assert link(genesis("bus-017"), first.record) == first.digest == second.record.prev
    with pytest.raises(ForkError):
        link(first.digest, first.record)


def test_a_whole_chain_verifies_from_genesis_and_in_pieces() -> None:
    entries = chain(count=10)
    start = Cursor.start("bus-017")
    end = verify_segment(start, "bus-017", entries)
    assert end == Cursor(10, entries[-1].digest)
    middle = verify_segment(start, "bus-017", entries[:4])
    assert verify_segment(middle, "bus-017", entries[4:]) == end


def test_a_missing_record_is_a_gap_that_names_what_was_expected() -> None:
    entries = chain(count=5)
    with pytest.raises(GapError) as caught:
        verify_segment(Cursor.start("bus-017"), "bus-017", entries[:2] + entries[3:])
    assert caught.value.expected_seq == 3
    assert caught.value.expected_prev == entries[1].digest


def test_reordered_or_repeated_records_are_refused() -> None:
    entries = chain(count=4)
    with pytest.raises(ChainError, match="out of order"):
        verify_segment(Cursor.start("bus-017"), "bus-017", [entries[0], entries[1], entries[1]])


def test_a_record_that_names_another_past_is_a_fork() -> None:
    entries = chain(count=3)
    forged = dataclasses.replace(entries[2].record, prev=bytes(32))
    with pytest.raises(ForkError):
        verify_segment(Cursor.start("bus-017"), "bus-017", [*entries[:2], EncodedRecord.of(forged)])


def test_another_devices_record_is_refused() -> None:
    with pytest.raises(ChainError, match="belongs to device"):
        verify_segment(Cursor.start("bus-017"), "bus-017", chain(device="bus-018", count=1))
