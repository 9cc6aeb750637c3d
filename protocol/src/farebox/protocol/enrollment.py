"""Enrollment: a device presents a one-time token and its new public key, once.

The operator makes the token on the server (`farebox-server enroll-token`); the device
makes its Ed25519 key, sends `EnrollRequest`, and keeps what `Enrollment` returns: its
device id, the package keys it will trust, the server's time, and its first signed config
package. Every later request is signed with the device key (see `farebox.protocol.auth`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.keys import VerifyKey
from farebox.protocol.records import check_device_id, check_time_ms
from farebox.protocol.wire import Fields

ENROLLMENT_FORMAT = 1
MAX_TOKEN_LENGTH = 128


class DeviceKind(StrEnum):
    BUS = "bus"
    GATE = "gate"


@dataclass(frozen=True, slots=True)
class EnrollRequest:
    token: str
    public_key: VerifyKey

    def __post_init__(self) -> None:
        if not 0 < len(self.token) <= MAX_TOKEN_LENGTH:
            raise InvalidValueError(f"an enrollment token is 1-{MAX_TOKEN_LENGTH} characters")


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What a newly enrolled device keeps."""

    device: str
    kind: DeviceKind
    package_keys: tuple[VerifyKey, ...]
    server_time_ms: int
    config_package: bytes

    def __post_init__(self) -> None:
        check_device_id(self.device)
        check_time_ms(self.server_time_ms, "server_time_ms")
        if not self.package_keys:
            raise InvalidValueError("an enrollment names at least one package key")


def encode_enroll_request(request: EnrollRequest) -> bytes:
    return cbor.encode(
        {"v": ENROLLMENT_FORMAT, "token": request.token, "key": request.public_key.raw}
    )


def decode_enroll_request(data: bytes) -> EnrollRequest:
    fields = _fields(data, "enroll request", {"v", "token", "key"})
    try:
        return EnrollRequest(fields.text("token"), VerifyKey(fields.blob("key")))
    except InvalidValueError as error:
        raise DecodeError(f"enroll request: {error}") from None


def encode_enrollment(enrollment: Enrollment) -> bytes:
    return cbor.encode(
        {
            "v": ENROLLMENT_FORMAT,
            "dev": enrollment.device,
            "kind": enrollment.kind.value,
            "pkg_keys": [key.raw for key in enrollment.package_keys],
            "t": enrollment.server_time_ms,
            "config": enrollment.config_package,
        }
    )


def decode_enrollment(data: bytes) -> Enrollment:
    fields = _fields(data, "enrollment", {"v", "dev", "kind", "pkg_keys", "t", "config"})
    try:
        return Enrollment(
            device=fields.text("dev"),
            kind=fields.enum("kind", DeviceKind),
            package_keys=tuple(VerifyKey(raw) for raw in fields.list_of("pkg_keys", bytes)),
            server_time_ms=fields.integer("t"),
            config_package=fields.blob("config"),
        )
    except InvalidValueError as error:
        raise DecodeError(f"enrollment: {error}") from None


def _fields(data: bytes, what: str, keys: set[str]) -> Fields:
    fields = Fields.of(cbor.decode(data, what), what)
    fields.expect_keys(keys)
    if fields.integer("v") != ENROLLMENT_FORMAT:
        raise DecodeError(f"{what}: unknown format {fields.integer('v')}")
    return fields
