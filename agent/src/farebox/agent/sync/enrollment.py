"""What a device keeps from its enrollment, in `enrollment.cbor` beside its key.

The file is written at enrollment, and again when the device comes to trust a rotated
package key; always atomically (a temporary file, fsync, rename, fsync of the directory),
so a power cut leaves either the old file or the whole new one.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from farebox.agent.errors import StoreError
from farebox.protocol import cbor
from farebox.protocol.enrollment import DeviceKind
from farebox.protocol.errors import InvalidValueError, ProtocolError
from farebox.protocol.keys import VerifyKey
from farebox.protocol.package_keys import Endorsement, trusted_after
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


class PackageKeys:
    """The package keys this device trusts: those from enrollment and those endorsed since.

    A key learned from the server's endorsements (`farebox.protocol.package_keys`) is kept
    in the enrollment file, so that the device still trusts it after a restart.
    """

    def __init__(self, directory: Path, enrolled: EnrolledDevice) -> None:
        self._directory = directory
        self._enrolled = enrolled

    @property
    def trusted(self) -> tuple[VerifyKey, ...]:
        return self._enrolled.package_keys

    def knows(self, key_id: bytes) -> bool:
        return any(key.key_id == key_id for key in self.trusted)

    def learn(self, chain: Iterable[Endorsement]) -> tuple[VerifyKey, ...]:
        """Trust the keys `chain` endorses, link by link; return those new to this device."""
        before = self.trusted
        new = tuple(key for key in trusted_after(before, chain) if key not in before)
        if new:
            enrolled = dataclasses.replace(self._enrolled, package_keys=before + new)
            write_enrollment(self._directory, enrolled)
            self._enrolled = enrolled
        return new
