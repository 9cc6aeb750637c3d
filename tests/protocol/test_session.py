"""The sync session wired together in memory: a device's Uploader and the server's judge."""

from __future__ import annotations

import dataclasses

import pytest

from farebox.protocol.chain import Cursor
from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.errors import LocalProtocolError
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import (
    Ack,
    Batch,
    Message,
    Refusal,
    RefusalCode,
    decode_message,
    encode_message,
)
from farebox.protocol.records import EncodedRecord
from farebox.protocol.session import (
    Accepted,
    Acknowledged,
    Continues,
    Duplicate,
    Halted,
    Links,
    Refused,
    Resumed,
    Rewind,
    Uploader,
    UploaderState,
    answer,
    judge,
    judge_links,
)
from tests.support.records import MORNING_MS, chain

DEVICE = "bus-017"
KEY = SigningKey.from_seed(b"\x17" * 32)


class Server:
    """The server's side with a cursor and a list for storage: what the I/O shell does."""

    def __init__(self) -> None:
        self.cursor = Cursor.start(DEVICE)
        self.stored: list[EncodedRecord] = []

    def receive(self, batch: Batch) -> Ack | Refusal:
        received = _over_the_wire(batch)
        assert isinstance(received, Batch)
        judgement = judge(self.cursor, received, KEY.verify_key)
        if isinstance(judgement, Accepted):
            self.stored.extend(judgement.new)
            self.cursor = judgement.cursor
        reply = _over_the_wire(answer(DEVICE, judgement, self.cursor, MORNING_MS))
        assert not isinstance(reply, Batch)
        return reply


def _over_the_wire(message: Message) -> Message:
    decoded = decode_message(encode_message(message))
    assert decoded == message
    return decoded


def signed_batch(entries: list[EncodedRecord], key: SigningKey = KEY) -> Batch:
    last = entries[-1]
    checkpoint = Checkpoint(DEVICE, last.record.seq, last.digest, MORNING_MS)
    return Batch(DEVICE, tuple(entries), sign_checkpoint(checkpoint, key))


def test_a_day_of_records_syncs_in_batches_exactly_once() -> None:
    journal = chain(count=1234)
    server, uploader = Server(), Uploader(DEVICE, Cursor.start(DEVICE), max_records=500)
    rounds = 0
    while (
        batch := uploader.next_batch(journal[uploader.acked.seq :], KEY, MORNING_MS)
    ) is not None:
        event = uploader.receive(server.receive(batch))
        assert isinstance(event, Acknowledged)
        rounds += 1
    assert rounds == 3
    assert server.stored == journal
    assert uploader.acked == server.cursor == Cursor(1234, journal[-1].digest)


def test_a_lost_ack_resends_and_the_server_posts_nothing_twice() -> None:
    journal = chain(count=20)
    server, uploader = Server(), Uploader(DEVICE, Cursor.start(DEVICE), max_records=8)
    batch = uploader.next_batch(journal, KEY, MORNING_MS)
    assert batch is not None
    server.receive(batch)  # arrives, but the answer is lost
    uploader.transport_failed()
    again = uploader.next_batch(journal, KEY, MORNING_MS)
    assert again is not None
    assert isinstance(judge(server.cursor, again, KEY.verify_key), Duplicate)
    assert isinstance(uploader.receive(server.receive(again)), Acknowledged)
    # Overlap: a batch that starts inside what the server holds posts only the new part.
    overlap = signed_batch(journal[4:12])
    judgement = judge(server.cursor, overlap, KEY.verify_key)
    assert isinstance(judgement, Accepted)
    assert [e.record.seq for e in judgement.new] == [9, 10, 11, 12]


def test_a_server_restored_from_a_backup_gets_the_lost_records_again() -> None:
    journal = chain(count=10)
    server = Server()
    server.receive(signed_batch(journal[:6]))
    uploader = Uploader(DEVICE, Cursor(6, journal[5].digest))
    server.cursor, server.stored = Cursor(2, journal[1].digest), server.stored[:2]
    batch = uploader.next_batch(journal[6:], KEY, MORNING_MS)
    assert batch is not None
    reply = server.receive(batch)
    assert isinstance(reply, Refusal)
    assert reply.code is RefusalCode.GAP
    event = uploader.receive(reply)
    assert event == Rewind(server.cursor)
    assert uploader.state is UploaderState.REWINDING
    assert uploader.rewind(journal[1].digest) == Resumed(server.cursor)
    while batch := uploader.next_batch(journal[uploader.acked.seq :], KEY, MORNING_MS):
        assert isinstance(uploader.receive(server.receive(batch)), Acknowledged)
    assert server.stored == journal


def test_a_rewind_to_a_pruned_or_different_record_halts() -> None:
    journal = chain(count=4)
    uploader = Uploader(DEVICE, Cursor(3, journal[2].digest))
    assert uploader.next_batch(journal[3:], KEY, MORNING_MS) is not None
    lost = Cursor(1, journal[0].digest)
    assert uploader.receive(Refusal(DEVICE, RefusalCode.GAP, "expected 2", lost)) == Rewind(lost)
    assert isinstance(uploader.rewind(None), Halted)
    assert uploader.state is UploaderState.HALTED


def test_a_gap_claimed_past_the_acked_cursor_halts_instead_of_skipping_records() -> None:
    journal = chain(count=10)
    uploader = Uploader(DEVICE, Cursor.start(DEVICE))
    assert uploader.next_batch(journal[:3], KEY, MORNING_MS) is not None
    forged = Refusal(DEVICE, RefusalCode.GAP, "expected 10", Cursor(9, bytes(32)))
    assert isinstance(uploader.receive(forged), Halted)
    with pytest.raises(LocalProtocolError, match="no rewind pending"):
        uploader.rewind(bytes(32))


def test_a_shorter_resend_after_a_lost_ack_is_acked_at_its_own_end() -> None:
    journal = chain(count=12)
    server = Server()
    server.receive(signed_batch(journal[:10]))  # the ack of this one was lost
    uploader = Uploader(DEVICE, Cursor.start(DEVICE), max_records=4)
    batch = uploader.next_batch(journal, KEY, MORNING_MS)
    assert batch is not None
    event = uploader.receive(server.receive(batch))
    assert event == Acknowledged(Cursor(4, journal[3].digest), MORNING_MS)
    while batch := uploader.next_batch(journal[uploader.acked.seq :], KEY, MORNING_MS):
        assert isinstance(uploader.receive(server.receive(batch)), Acknowledged)
    assert server.stored == journal


def test_a_forged_signature_and_a_forked_chain_are_refused() -> None:
    journal = chain(count=6)
    server = Server()
    assert isinstance(server.receive(signed_batch(journal[:3])), Ack)
    forged = judge(server.cursor, signed_batch(journal[3:], SigningKey.generate()), KEY.verify_key)
    assert isinstance(forged, Refused)
    assert forged.code is RefusalCode.BAD_SIGNATURE
    other_past = dataclasses.replace(journal[3].record, prev=bytes(32))
    fork = judge(server.cursor, signed_batch([EncodedRecord.of(other_past)]), KEY.verify_key)
    assert isinstance(fork, Refused)
    assert fork.code is RefusalCode.FORK
    # A resent last record that differs from the one held is a fork, not a duplicate.
    rewritten = dataclasses.replace(journal[2].record, time_ms=1)
    replaced = signed_batch([*journal[:2], EncodedRecord.of(rewritten)])
    assert isinstance(judge(server.cursor, replaced, KEY.verify_key), Refused)
    assert server.stored == journal[:3]


def test_only_the_links_of_records_the_server_lacks_are_judged() -> None:
    """A broken link among the records the server holds was judged when they came; in the
    new records it is a fork, and a batch the server holds whole is judged whole."""
    journal = chain(count=6)
    server = Server()
    assert isinstance(server.receive(signed_batch(journal[:3])), Ack)
    broken = EncodedRecord.of(dataclasses.replace(journal[1].record, prev=bytes(32)))
    overlap = signed_batch([journal[0], broken, *journal[2:5]])
    assert Links.of(overlap, KEY.verify_key).breaks == (2, 3)  # 3 names the real record 2
    judged = judge_links(Cursor(3, journal[2].digest), Links.of(overlap, KEY.verify_key))
    assert judged == Continues(held=3, cursor=Cursor(5, journal[4].digest))
    held_whole = judge(
        server.cursor, signed_batch([journal[0], broken, journal[2]]), KEY.verify_key
    )
    assert held_whole == Refused(RefusalCode.FORK, "record 2 does not continue the chain")
    fifth = EncodedRecord.of(dataclasses.replace(journal[4].record, prev=bytes(32)))
    new_broken = signed_batch([journal[3], fifth])
    assert judge(server.cursor, new_broken, KEY.verify_key) == Refused(
        RefusalCode.FORK, "record 5 does not continue the chain"
    )


def test_an_ack_for_another_record_halts_the_device() -> None:
    journal = chain(count=3)
    uploader = Uploader(DEVICE, Cursor.start(DEVICE))
    assert uploader.next_batch(journal, KEY, MORNING_MS) is not None
    event = uploader.receive(Ack(DEVICE, Cursor(3, bytes(32)), MORNING_MS))
    assert isinstance(event, Halted)
    assert "fork" in event.reason
    assert uploader.state is UploaderState.HALTED


def test_the_api_refuses_misuse() -> None:
    journal = chain(count=3)
    uploader = Uploader(DEVICE, Cursor.start(DEVICE))
    with pytest.raises(LocalProtocolError, match="no batch in flight"):
        uploader.transport_failed()
    with pytest.raises(LocalProtocolError, match="do not follow"):
        uploader.next_batch(journal[1:], KEY, MORNING_MS)
    assert uploader.next_batch([], KEY, MORNING_MS) is None
    assert uploader.next_batch(journal, KEY, MORNING_MS) is not None
    with pytest.raises(LocalProtocolError, match="awaiting_answer"):
        uploader.next_batch(journal, KEY, MORNING_MS)
