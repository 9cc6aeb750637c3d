from __future__ import annotations

import cbor2
import pytest

from farebox.protocol import cbor
from farebox.protocol.chain import Cursor
from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.errors import DecodeError, InvalidValueError, UnsupportedVersionError
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import (
    MAX_BATCH_RECORDS,
    Ack,
    Batch,
    Refusal,
    RefusalCode,
    decode_message,
    encode_message,
)
from tests.support.records import MORNING_MS, chain

KEY = SigningKey.from_seed(b"\x17" * 32)


def batch_of(count: int = 3) -> Batch:
    entries = tuple(chain(count=count))
    last = entries[-1]
    checkpoint = Checkpoint("bus-017", last.record.seq, last.digest, MORNING_MS)
    return Batch("bus-017", entries, sign_checkpoint(checkpoint, KEY))


@pytest.mark.parametrize(
    "message",
    [
        batch_of(),
        Ack("bus-017", Cursor(3, b"\x01" * 32), MORNING_MS),
        Refusal("bus-017", RefusalCode.GAP, "expected seq 4", Cursor(3, b"\x01" * 32)),
        Refusal("bus-017", RefusalCode.UNKNOWN_DEVICE, "who?", None),
    ],
)
def test_messages_round_trip(message: Batch | Ack | Refusal) -> None:
    raw = encode_message(message)
    assert decode_message(raw) == message
    assert encode_message(decode_message(raw)) == raw


def test_the_checkpoint_must_sign_the_last_record() -> None:
    good = batch_of()
    with pytest.raises(InvalidValueError, match="last record"):
        Batch("bus-017", good.entries[:-1], good.checkpoint)
    with pytest.raises(InvalidValueError, match="at least one"):
        Batch("bus-017", (), good.checkpoint)


def test_an_unknown_protocol_version_is_its_own_error() -> None:
    wire = cbor.decode(encode_message(batch_of()))
    assert isinstance(wire, dict)
    wire["v"] = 99
    with pytest.raises(UnsupportedVersionError, match="accepted: 1"):
        decode_message(cbor.encode(wire))


def test_oversized_batches_are_refused_before_parsing_records() -> None:
    wire = cbor.decode(encode_message(batch_of(1)))
    assert isinstance(wire, dict)
    wire["recs"] = [b"\x00"] * (MAX_BATCH_RECORDS + 1)
    with pytest.raises(DecodeError, match="at most"):
        decode_message(cbor.encode(wire))


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"v": 1, "kind": "hello"}, "unknown kind"),
        ({"v": 1, "kind": "ack", "dev": "bus-017"}, "missing field"),
        (
            {
                "v": 1,
                "kind": "refusal",
                "dev": "x",
                "code": "gap",
                "msg": "m",
                "seq": 1,
                "head": None,
            },
            "together",
        ),
        ({"v": 1, "kind": "batch", "dev": "bus-017", "recs": [b"\xa0"], "cp": {}}, "record"),
    ],
)
def test_malformed_messages_raise_decode_error(wire: dict[str, cbor.Value], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_message(cbor.encode(wire))


def test_a_batch_holds_consecutive_records_of_one_device() -> None:
    entries = chain(count=5)
    good = batch_of(5)
    skipping = (entries[0], entries[2], entries[3], entries[4])
    with pytest.raises(InvalidValueError, match="consecutive"):
        Batch("bus-017", skipping, good.checkpoint)
    wire = cbor.decode(encode_message(good))
    assert isinstance(wire, dict)
    wire["recs"] = [e.raw for e in skipping]
    with pytest.raises(DecodeError, match="consecutive"):
        decode_message(cbor.encode(wire))


def test_integers_beyond_64_bits_are_refused() -> None:
    wire = cbor.decode(encode_message(batch_of(1)))
    assert isinstance(wire, dict)
    wire["v"] = 2**64  # a bignum tag; our encoder refuses to write one, so cbor2 does
    with pytest.raises(DecodeError, match="64"):
        decode_message(cbor2.dumps(wire, canonical=True))
    with pytest.raises(TypeError, match="64 bits"):
        cbor.encode(wire)
    wire["v"] = 2**63  # CBOR's own integer, but beyond any farebox field
    with pytest.raises(DecodeError, match="64 signed bits"):
        decode_message(cbor.encode(wire))
