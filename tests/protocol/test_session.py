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
    Duplicate,
    Halted,
    Refused,
    Rewind,
    Uploader,
    UploaderState,
    answer,
    judge,
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


def test_a_server_that_lost_acknowledged_records_halts_the_device() -> None:
    journal = chain(count=10)
    server = Server()
    server.receive(signed_batch(journal[:2]))
    # The device had 3 acknowledged; the server, restored from a backup, holds only 2.
    uploader = Uploader(DEVICE, Cursor(3, journal[2].digest))
    batch = uploader.next_batch(journal[3:], KEY, MORNING_MS)
    assert batch is not None
    reply = server.receive(batch)
    assert isinstance(reply, Refusal)
    assert reply.code is RefusalCode.GAP
    event = uploader.receive(reply)
    assert isinstance(event, Halted)  # the server holds less than it acknowledged: alarm


def test_a_device_ahead_of_a_lost_cursor_is_told_to_rewind() -> None:
    journal = chain(count=10)
    server = Server()
    server.receive(signed_batch(journal[:3]))
    uploader = Uploader(DEVICE, Cursor(2, journal[1].digest))
    batch = signed_batch(journal[5:8])
    refused = judge(server.cursor, batch, KEY.verify_key)
    assert isinstance(refused, Refused)
    assert refused.code is RefusalCode.GAP
    assert uploader.next_batch(journal[2:], KEY, MORNING_MS) is not None
    event = uploader.receive(Refusal(DEVICE, RefusalCode.GAP, "expected 4", server.cursor))
    assert event == Rewind(server.cursor)
    assert uploader.state is UploaderState.IDLE


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
