"""Protocol core speed: what the server spends per record before storage.

Ceilings, measured in the same run on the same bytes: the bare cbor2 decode of a record
(no validation) and one Ed25519 verify (what a per-record signature would cost). A record
refused at its last check costs the most: it fails the decoder's fast path late and then
takes the full check, which names what is wrong. Run as `.venv/bin/python -m bench.protocol`.
"""

from __future__ import annotations

import hashlib

import cbor2

from bench.table import Row, per_second, render
from farebox.protocol import cbor
from farebox.protocol.chain import Cursor
from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.errors import DecodeError
from farebox.protocol.keys import SigningKey
from farebox.protocol.messages import Batch, decode_message, encode_message
from farebox.protocol.records import EncodedRecord, encode_record, record_to_wire
from farebox.protocol.session import judge
from tests.support.records import MORNING_MS, chain

BATCH = 500


def main() -> None:
    key = SigningKey.generate()
    entries = chain(count=BATCH)
    record, raw = entries[-1].record, entries[-1].raw
    last = entries[-1]
    checkpoint = Checkpoint("bus-017", last.record.seq, last.digest, MORNING_MS)
    wire = encode_message(Batch("bus-017", tuple(entries), sign_checkpoint(checkpoint, key)))
    start = Cursor.start("bus-017")

    refused_wire = record_to_wire(entries[-2].record)
    refused_wire["tap"]["flags"] = ["Stale"]  # type: ignore[index]  # not a lower-case code
    refused = cbor.encode(refused_wire)

    def refuse() -> None:
        try:
            EncodedRecord.parse(refused)
        except DecodeError:
            return
        raise AssertionError("the bench's bad record was accepted")

    def ingest_batch() -> None:
        batch = decode_message(wire)
        assert isinstance(batch, Batch)
        judge(start, batch, key.verify_key)

    bare_decode = per_second(lambda: cbor2.loads(raw), 50_000)
    signature = b"\x00" * 64
    message = hashlib.sha256(raw).digest()

    def verify_one() -> None:
        try:
            key.verify_key.verify(signature, b"", message)
        except Exception:  # noqa: BLE001 - the bench times the work, not the verdict
            return

    per_record_verify = per_second(verify_one, 3_000)
    rows = [
        Row("record encode", per_second(lambda: encode_record(record), 30_000), "rec/s",
            bare_decode, "(cbor2 bare decode)"),
        Row("record parse + validate + hash", per_second(lambda: EncodedRecord.parse(raw), 30_000),
            "rec/s", bare_decode, "(cbor2 bare decode)"),
        Row("record refused at its last check", per_second(refuse, 10_000), "rec/s",
            bare_decode, "(cbor2 bare decode)"),
        Row(f"batch of {BATCH}: decode + chain + 1 signature",
            per_second(ingest_batch, 40) * BATCH, "rec/s", per_record_verify,
            ">= 25,000 tx/s server ingest (section 11)"),
    ]  # fmt: skip
    print(
        render(
            "Protocol core, per record (ceiling: bare decode; last row: Ed25519 per record)", rows
        )
    )


if __name__ == "__main__":
    main()
