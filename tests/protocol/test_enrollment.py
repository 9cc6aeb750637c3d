from __future__ import annotations

import pytest

from farebox.protocol import cbor
from farebox.protocol.enrollment import (
    DeviceKind,
    Enrollment,
    EnrollRequest,
    decode_enroll_request,
    decode_enrollment,
    encode_enroll_request,
    encode_enrollment,
)
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.heartbeat import Heartbeat, decode_heartbeat, encode_heartbeat
from farebox.protocol.keys import SigningKey
from farebox.protocol.packages import PackageKind

DEVICE_KEY = SigningKey.from_seed(b"\x17" * 32)
PACKAGE_KEY = SigningKey.from_seed(b"\x5e" * 32)


def test_enroll_request_and_answer_round_trip() -> None:
    request = EnrollRequest("et-4f2a9c", DEVICE_KEY.verify_key)
    assert decode_enroll_request(encode_enroll_request(request)) == request
    enrollment = Enrollment("bus-017", DeviceKind.BUS, (PACKAGE_KEY.verify_key,), 1, b"\xa0")
    assert decode_enrollment(encode_enrollment(enrollment)) == enrollment


def test_enrollment_values_are_validated() -> None:
    with pytest.raises(InvalidValueError):
        EnrollRequest("", DEVICE_KEY.verify_key)
    with pytest.raises(InvalidValueError, match="package key"):
        Enrollment("bus-017", DeviceKind.BUS, (), 1, b"")
    with pytest.raises(DecodeError, match="public key"):
        decode_enroll_request(cbor.encode({"v": 1, "token": "t", "key": b"\x00" * 5}))


def test_heartbeat_round_trips() -> None:
    heartbeat = Heartbeat(
        device="bus-017",
        time_ms=1_795_680_000_000,
        versions={PackageKind.TARIFF: 3, PackageKind.STOPLIST: 42},
        journal_depth=1500,
        oldest_unsynced_ms=1_795_650_000_000,
        clock_offset_ms=-850,
        disk_free_bytes=2_000_000_000,
        readers={"nfc": "ok", "qr": "unplugged"},
    )
    assert decode_heartbeat(encode_heartbeat(heartbeat)) == heartbeat


def test_heartbeat_refuses_unknown_package_kinds() -> None:
    wire: dict[str, cbor.Value] = {
        "v": 1, "dev": "bus-017", "t": 1, "versions": {"firmware": 1}, "depth": 0,
        "oldest": None, "offset": 0, "disk": 0, "readers": {},
    }  # fmt: skip
    with pytest.raises(DecodeError, match="versions"):
        decode_heartbeat(cbor.encode(wire))
