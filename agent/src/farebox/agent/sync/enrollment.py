"""What a device keeps from its enrollment, in `enrollment.cbor` beside its key.

The file is written once, atomically (a temporary file, fsync, rename, fsync of the
directory), so a power cut during enrollment leaves either no enrollment or a whole one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from farebox.agent.errors import StoreError
from farebox.protocol import cbor
from farebox.protocol.enrollment import DeviceKind
from farebox.protocol.errors import InvalidValueError, ProtocolError
from farebox.protocol.keys import VerifyKey
from farebox.protocol.records import check_device_id
from farebox.protocol.wire import Fields

ENROLLMENT_FILE = "enrollment.cbor"
KEY_FILE = "device.key"
FORMAT = 1


@dataclass(frozen=True, slots=True)
class EnrolledDevice:
    """The device id the server gave, its kind, the package keys to trust, the server."""

    device: str
    kind: DeviceKind
    package_keys: tuple[VerifyKey, ...]
    server: str
    enrolled_ms: int

    def __post_init__(self) -> None:
        check_device_id(self.device)
        if not self.package_keys:
            raise InvalidValueError("an enrollment trusts at least one package key")


def enrollment_path(directory: Path) -> Path:
    return directory / ENROLLMENT_FILE


def write_enrollment(directory: Path, enrolled: EnrolledDevice) -> None:
    """Replace the enrollment file atomically and durably."""
    data = cbor.encode(
        {
            "v": FORMAT,
            "dev": enrolled.device,
            "kind": enrolled.kind.value,
            "pkg_keys": [key.raw for key in enrolled.package_keys],
            "server": enrolled.server,
            "t": enrolled.enrolled_ms,
        }
    )
    path = enrollment_path(directory)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise StoreError(f"cannot write {path}: {error.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def read_enrollment(directory: Path) -> EnrolledDevice | None:
    """The enrollment kept in `directory`, or None if the device was never enrolled."""
    path = enrollment_path(directory)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StoreError(f"cannot read {path}: {error.strerror}") from None
    try:
        fields = Fields.of(cbor.decode(data, "enrollment file"), "enrollment file")
        fields.expect_keys({"v", "dev", "kind", "pkg_keys", "server", "t"})
        if fields.integer("v") != FORMAT:
            raise InvalidValueError(f"unknown format {fields.integer('v')}")
        return EnrolledDevice(
            device=fields.text("dev"),
            kind=fields.enum("kind", DeviceKind),
            package_keys=tuple(VerifyKey(raw) for raw in fields.list_of("pkg_keys", bytes)),
            server=fields.text("server"),
            enrolled_ms=fields.integer("t"),
        )
    except ProtocolError as error:
        raise StoreError(f"{path} is damaged: {error}") from None
