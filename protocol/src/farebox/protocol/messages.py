"""The sync messages: a device's batch, and the server's ack or refusal.

A batch carries records `seq a..b` of one device, each as its canonical bytes, and one
signed checkpoint at `b`. The server answers an ack (`acked through b`, with the head hash
it holds there) or a refusal that says why and where its cursor stands, so the device knows
what to send next. See docs/protocol.md for the byte-level contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from farebox.protocol import cbor
from farebox.protocol.chain import Cursor
from farebox.protocol.checkpoint import SignedCheckpoint, checkpoint_from_wire, checkpoint_to_wire
from farebox.protocol.errors import DecodeError, InvalidValueError, UnsupportedVersionError
from farebox.protocol.records import EncodedRecord, check_device_id, check_time_ms
from farebox.protocol.wire import Fields

PROTOCOL_VERSION = 1
# During a rollout the server also accepts the previous version (N-1).
ACCEPTED_VERSIONS = frozenset(v for v in (PROTOCOL_VERSION - 1, PROTOCOL_VERSION) if v > 0)
MAX_BATCH_RECORDS = 5000
MAX_RECORD_BYTES = 4096


class RefusalCode(StrEnum):
    GAP = "gap"
    FORK = "fork"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_DEVICE = "unknown_device"


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive records of one device and a checkpoint signed at the last of them."""

    device: str
    entries: tuple[EncodedRecord, ...]
    checkpoint: SignedCheckpoint
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        check_device_id(self.device)
        if not self.entries:
            raise InvalidValueError("a batch holds at least one record")
        if len(self.entries) > MAX_BATCH_RECORDS:
            raise InvalidValueError(f"a batch holds at most {MAX_BATCH_RECORDS} records")
        first = self.entries[0].record.seq
        for offset, entry in enumerate(self.entries):
            if entry.record.device != self.device or entry.record.seq != first + offset:
                raise InvalidValueError("a batch holds consecutive records of its own device")
        cp = self.checkpoint.checkpoint
        last = self.entries[-1]
        if cp.device != self.device or cp.seq != last.record.seq or cp.head != last.digest:
            raise InvalidValueError("the checkpoint must sign the batch's last record")

    @property
    def first_seq(self) -> int:
        return self.entries[0].record.seq

    @property
    def last_seq(self) -> int:
        return self.entries[-1].record.seq


@dataclass(frozen=True, slots=True)
class Ack:
    """The server holds `device`'s chain through `cursor`; its clock read `server_time_ms`."""

    device: str
    cursor: Cursor
    server_time_ms: int

    def __post_init__(self) -> None:
        check_device_id(self.device)
        check_time_ms(self.server_time_ms, "server_time_ms")


@dataclass(frozen=True, slots=True)
class Refusal:
    """The server refused a batch; `cursor` is where it stands, when it knows the device."""

    device: str
    code: RefusalCode
    message: str
    cursor: Cursor | None

    def __post_init__(self) -> None:
        check_device_id(self.device)
        if not isinstance(self.code, RefusalCode) or not isinstance(self.message, str):
            raise InvalidValueError("a refusal has a RefusalCode and a text message")


Message = Batch | Ack | Refusal


def encode_message(message: Message) -> bytes:
    """The canonical bytes of a batch, an ack or a refusal."""
    wire: dict[str, cbor.Value]
    if isinstance(message, Batch):
        wire = {
            "kind": "batch",
            "dev": message.device,
            "recs": [entry.raw for entry in message.entries],
            "cp": checkpoint_to_wire(message.checkpoint),
        }
    elif isinstance(message, Ack):
        wire = {
            "kind": "ack",
            "dev": message.device,
            "seq": message.cursor.seq,
            "head": message.cursor.head,
            "t": message.server_time_ms,
        }
    else:
        cursor = message.cursor
        wire = {
            "kind": "refusal",
            "dev": message.device,
            "code": message.code.value,
            "msg": message.message,
            "seq": None if cursor is None else cursor.seq,
            "head": None if cursor is None else cursor.head,
        }
    wire["v"] = message.version if isinstance(message, Batch) else PROTOCOL_VERSION
    return cbor.encode(wire)


def decode_message(data: bytes) -> Message:
    """Parse a batch, ack or refusal; raise DecodeError (or UnsupportedVersionError)."""
    fields = Fields.of(cbor.decode(data, "message"), "message")
    version = fields.integer("v")
    if version not in ACCEPTED_VERSIONS:
        accepted = ", ".join(str(v) for v in sorted(ACCEPTED_VERSIONS))
        raise UnsupportedVersionError(f"protocol version {version} (accepted: {accepted})")
    kind = fields.text("kind")
    try:
        if kind == "batch":
            return _decode_batch(fields, version)
        if kind == "ack":
            fields.expect_keys({"v", "kind", "dev", "seq", "head", "t"})
            cursor = Cursor(fields.integer("seq"), fields.blob("head"))
            return Ack(fields.text("dev"), cursor, fields.integer("t"))
        if kind == "refusal":
            return _decode_refusal(fields)
    except InvalidValueError as error:
        raise DecodeError(f"{kind}: {error}") from None
    raise DecodeError(f"message: unknown kind {kind!r}")


def _decode_batch(fields: Fields, version: int) -> Batch:
    fields.expect_keys({"v", "kind", "dev", "recs", "cp"})
    raws = fields.list_of("recs", bytes)
    if len(raws) > MAX_BATCH_RECORDS:
        raise DecodeError(f"batch: {len(raws)} records, at most {MAX_BATCH_RECORDS} allowed")
    for index, raw in enumerate(raws):
        if len(raw) > MAX_RECORD_BYTES:
            raise DecodeError(f"batch.recs[{index}]: {len(raw)} bytes, at most {MAX_RECORD_BYTES}")
    entries = tuple(EncodedRecord.parse_all(raws))
    checkpoint = checkpoint_from_wire(fields.mapping("cp"), "batch.cp")
    return Batch(fields.text("dev"), entries, checkpoint, version)


def _decode_refusal(fields: Fields) -> Refusal:
    fields.expect_keys({"v", "kind", "dev", "code", "msg", "seq", "head"})
    seq, head = fields.optional_integer("seq"), fields.values.get("head")
    if (seq is None) != (head is None):
        raise DecodeError("refusal: seq and head come together or not at all")
    cursor = None if seq is None else Cursor(seq, fields.blob("head"))
    return Refusal(fields.text("dev"), fields.enum("code", RefusalCode), fields.text("msg"), cursor)
