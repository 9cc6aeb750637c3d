from __future__ import annotations

import dataclasses

import pytest

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, PackageError, SignatureError
from farebox.protocol.keys import SigningKey
from farebox.protocol.packages import (
    PackageKind,
    decode_package,
    encode_package,
    sign_package,
)
from farebox.protocol.stoplist import (
    StoplistChange,
    StoplistChecksum,
    decode_stoplist_change,
    encode_stoplist_change,
)

SERVER_KEY = SigningKey.from_seed(b"\x5e" * 32)
NEXT_KEY = SigningKey.from_seed(b"\x5f" * 32)


def stoplist_delta() -> tuple[StoplistChange, bytes]:
    held = {"nfc:01", "nfc:02"}
    change = StoplistChange(full=False, added=frozenset({"nfc:03"}), removed=frozenset({"nfc:01"}))
    after = (held | change.added) - change.removed
    return change, StoplistChecksum.of(after).digest()


def test_package_round_trips_and_verifies() -> None:
    change, checksum = stoplist_delta()
    package = sign_package(
        PackageKind.STOPLIST, 42, 41, checksum, encode_stoplist_change(change), SERVER_KEY
    )
    decoded = decode_package(encode_package(package))
    assert decoded == package
    assert decoded.verify([SERVER_KEY.verify_key]) is decoded
    assert decode_stoplist_change(decoded.payload) == change


def test_rotation_any_trusted_key_with_the_id_verifies() -> None:
    package = sign_package(PackageKind.CONFIG, 1, None, bytes(32), b"\xa0", NEXT_KEY)
    package.verify([SERVER_KEY.verify_key, NEXT_KEY.verify_key])
    with pytest.raises(SignatureError, match="unknown key"):
        package.verify([SERVER_KEY.verify_key])


@pytest.mark.parametrize("field", ["payload", "checksum", "version", "base_version"])
def test_tampering_with_any_field_is_detected(field: str) -> None:
    package = sign_package(PackageKind.TARIFF, 7, 6, bytes(32), b"\xa0", SERVER_KEY)
    tampered_value: object = {
        "payload": b"\xa1\x61a\x01",
        "checksum": b"\x01" * 32,
        "version": 8,
        "base_version": 5,
    }[field]
    tampered = dataclasses.replace(package, **{field: tampered_value})  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="bad signature"):
        tampered.verify([SERVER_KEY.verify_key])


def test_a_delta_applies_only_to_its_base_and_must_reach_its_checksum() -> None:
    change, checksum = stoplist_delta()
    package = sign_package(
        PackageKind.STOPLIST, 42, 41, checksum, encode_stoplist_change(change), SERVER_KEY
    )
    package.check_base(41)
    with pytest.raises(PackageError, match="fetch a full package"):
        package.check_base(40)
    held = StoplistChecksum.of({"nfc:01", "nfc:02"})
    package.check_result(held.add(change.added).remove(change.removed).digest())
    with pytest.raises(PackageError, match="checksum mismatch"):
        package.check_result(held.add(change.added).digest())


def test_full_packages_apply_to_anything() -> None:
    package = sign_package(PackageKind.KEYSET, 3, None, bytes(32), b"\xa0", SERVER_KEY)
    package.check_base(None)
    package.check_base(1)
    assert not package.is_delta


def test_checksum_is_order_independent_and_incremental() -> None:
    tokens = [f"nfc:{i:04x}" for i in range(100)]
    assert StoplistChecksum.of(tokens) == StoplistChecksum.of(reversed(tokens))
    assert StoplistChecksum.of(tokens[:60]).add(tokens[60:]) == StoplistChecksum.of(tokens)
    assert StoplistChecksum.of(tokens).remove(tokens[:10]) == StoplistChecksum.of(tokens[10:])
    assert StoplistChecksum.of([]).digest() == bytes(32)


def test_stoplist_payloads_are_strict() -> None:
    with pytest.raises(DecodeError, match="sorted"):
        decode_stoplist_change(cbor.encode({"full": True, "add": ["b", "a"], "del": []}))
    with pytest.raises(ValueError, match="both added and removed"):
        StoplistChange(full=False, added=frozenset({"a"}), removed=frozenset({"a"}))
    with pytest.raises(ValueError, match="removes nothing"):
        StoplistChange(full=True, added=frozenset(), removed=frozenset({"a"}))
