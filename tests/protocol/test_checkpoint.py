from __future__ import annotations

import dataclasses

import pytest

from farebox.protocol.checkpoint import (
    Checkpoint,
    decode_checkpoint,
    encode_checkpoint,
    sign_checkpoint,
)
from farebox.protocol.errors import DecodeError, SignatureError
from farebox.protocol.keys import SigningKey

KEY = SigningKey.from_seed(b"\x17" * 32)
CHECKPOINT = Checkpoint("bus-017", 1500, b"\xab" * 32, 1_795_680_000_000)


def test_signed_checkpoint_round_trips_and_verifies() -> None:
    signed = sign_checkpoint(CHECKPOINT, KEY)
    decoded = decode_checkpoint(encode_checkpoint(signed))
    assert decoded == signed
    assert decoded.verify(KEY.verify_key) == CHECKPOINT


@pytest.mark.parametrize(
    "changes", [{"seq": 1501}, {"head": b"\xac" * 32}, {"time_ms": 1}, {"device": "bus-018"}]
)
def test_any_changed_field_breaks_the_signature(changes: dict[str, object]) -> None:
    signed = sign_checkpoint(CHECKPOINT, KEY)
    forged = dataclasses.replace(
        signed,
        checkpoint=dataclasses.replace(CHECKPOINT, **changes),  # type: ignore[arg-type]
    )
    with pytest.raises(SignatureError):
        forged.verify(KEY.verify_key)


def test_another_devices_key_is_refused_by_key_id() -> None:
    signed = sign_checkpoint(CHECKPOINT, SigningKey.generate())
    with pytest.raises(SignatureError, match="device key is"):
        signed.verify(KEY.verify_key)


def test_malformed_checkpoints_raise_decode_error() -> None:
    raw = encode_checkpoint(sign_checkpoint(CHECKPOINT, KEY))
    with pytest.raises(DecodeError):
        decode_checkpoint(raw[:-1])
    with pytest.raises(DecodeError, match="missing field"):
        decode_checkpoint(b"\xa1\x63dev\x61x")
