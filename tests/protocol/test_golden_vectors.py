from __future__ import annotations

import json

from farebox.protocol.chain import Cursor, genesis, verify_segment
from farebox.protocol.checkpoint import decode_checkpoint
from farebox.protocol.keys import SigningKey, VerifyKey
from farebox.protocol.messages import Batch, decode_message
from farebox.protocol.packages import decode_package
from farebox.protocol.records import EncodedRecord
from farebox.protocol.session import Accepted, judge
from tests.protocol.golden import VECTORS, build_vectors

GOLDEN = json.loads(VECTORS.read_text())


def test_the_encoder_still_produces_the_checked_in_bytes() -> None:
    assert build_vectors() == GOLDEN


def test_the_checked_in_bytes_still_decode_and_verify() -> None:
    device_key = VerifyKey(bytes.fromhex(GOLDEN["device_public_key"]))
    assert device_key.key_id.hex() == GOLDEN["device_key_id"]
    assert genesis("bus-017").hex() == GOLDEN["genesis"]
    entries = [EncodedRecord.parse(bytes.fromhex(r["cbor"])) for r in GOLDEN["records"]]
    assert [e.digest.hex() for e in entries] == [r["sha256"] for r in GOLDEN["records"]]
    head = verify_segment(Cursor.start("bus-017"), "bus-017", entries)
    checkpoint = decode_checkpoint(bytes.fromhex(GOLDEN["checkpoint"])).verify(device_key)
    assert (checkpoint.seq, checkpoint.head) == (head.seq, head.head)
    batch = decode_message(bytes.fromhex(GOLDEN["batch"]))
    assert isinstance(batch, Batch)
    assert isinstance(judge(Cursor.start("bus-017"), batch, device_key), Accepted)
    server_key = SigningKey.from_seed(bytes.fromhex(GOLDEN["server_seed"])).verify_key
    decode_package(bytes.fromhex(GOLDEN["stoplist_package"])).verify([server_key])
