"""The signed checkpoint: a device's signature over the head of its chain.

Because every record names its predecessor's hash, one Ed25519 signature over
`(device, seq, head hash, time)` vouches for every record up to `seq`. The server
verifies one signature per batch, not one per tap.
"""

from __future__ import annotations

from dataclasses import dataclass

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError, SignatureError
from farebox.protocol.keys import KEY_ID_SIZE, SIGNATURE_SIZE, SigningKey, VerifyKey
from farebox.protocol.records import check_device_id, check_hash, check_seq, check_time_ms
from farebox.protocol.wire import Fields

CHECKPOINT_DOMAIN = b"farebox/checkpoint/v1\x00"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head of `device`'s chain at `seq`, as the device saw it at `time_ms`."""

    device: str
    seq: int
    head: bytes
    time_ms: int

    def __post_init__(self) -> None:
        check_device_id(self.device)
        check_seq(self.seq)
        check_hash(self.head, "head")
        check_time_ms(self.time_ms)

    def signed_bytes(self) -> bytes:
        """What the signature covers, after CHECKPOINT_DOMAIN."""
        return cbor.encode(
            {"dev": self.device, "seq": self.seq, "head": self.head, "t": self.time_ms}
        )


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, bytes) or len(self.key_id) != KEY_ID_SIZE:
            raise InvalidValueError(f"key id must be {KEY_ID_SIZE} bytes")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise InvalidValueError(f"signature must be {SIGNATURE_SIZE} bytes")

    def verify(self, key: VerifyKey) -> Checkpoint:
        """Return the checkpoint if `key` signed it; raise SignatureError otherwise."""
        if self.key_id != key.key_id:
            raise SignatureError(
                f"checkpoint signed by key {self.key_id.hex()}, device key is {key.key_id.hex()}"
            )
        key.verify(self.signature, CHECKPOINT_DOMAIN, self.checkpoint.signed_bytes())
        return self.checkpoint


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey) -> SignedCheckpoint:
    signature = key.sign(CHECKPOINT_DOMAIN, checkpoint.signed_bytes())
    return SignedCheckpoint(checkpoint, key.key_id, signature)


def checkpoint_to_wire(signed: SignedCheckpoint) -> dict[str, cbor.Value]:
    cp = signed.checkpoint
    return {
        "dev": cp.device,
        "seq": cp.seq,
        "head": cp.head,
        "t": cp.time_ms,
        "kid": signed.key_id,
        "sig": signed.signature,
    }


def checkpoint_from_wire(value: object, path: str = "checkpoint") -> SignedCheckpoint:
    fields = Fields.of(value, path)
    fields.expect_keys({"dev", "seq", "head", "t", "kid", "sig"})
    try:
        checkpoint = Checkpoint(
            fields.text("dev"), fields.integer("seq"), fields.blob("head"), fields.integer("t")
        )
        return SignedCheckpoint(checkpoint, fields.blob("kid"), fields.blob("sig"))
    except InvalidValueError as error:
        raise DecodeError(f"{path}: {error}") from None


def encode_checkpoint(signed: SignedCheckpoint) -> bytes:
    return cbor.encode(checkpoint_to_wire(signed))


def decode_checkpoint(data: bytes) -> SignedCheckpoint:
    return checkpoint_from_wire(cbor.decode(data, "checkpoint"))
