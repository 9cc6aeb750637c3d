"""Signed packages: what the server publishes to devices (tariffs, stoplist, keys, config).

A package is versioned. A full package (`base_version` None) replaces the device's state;
a delta (`base_version` = the version the device holds) changes it. Either way the
package carries the SHA-256 checksum of the whole state that results, so a device that
ends up with anything else throws the result away and asks for a full package (Google
Web Risk's pattern). The server's package key signs everything but the signature; a
device trusts the package keys it received at enrollment or in a signed key-set package.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError, PackageError, SignatureError
from farebox.protocol.keys import KEY_ID_SIZE, SIGNATURE_SIZE, SigningKey, VerifyKey
from farebox.protocol.records import HASH_SIZE
from farebox.protocol.wire import Fields

PACKAGE_FORMAT = 1
PACKAGE_DOMAIN = b"farebox/package/v1\x00"


class PackageKind(StrEnum):
    TARIFF = "tariff"
    STOPLIST = "stoplist"
    KEYSET = "keyset"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class Package:
    """A signed, versioned change to one kind of device state."""

    kind: PackageKind
    version: int
    base_version: int | None
    checksum: bytes
    payload: bytes
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.kind, PackageKind):
            raise InvalidValueError(f"unknown package kind {self.kind!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise InvalidValueError("a package version is a positive int")
        base = self.base_version
        if base is not None and (isinstance(base, bool) or not 0 <= base < self.version):
            raise InvalidValueError("a delta's base version is below its version")
        if len(self.checksum) != HASH_SIZE:
            raise InvalidValueError(f"a state checksum is {HASH_SIZE} bytes")
        if len(self.key_id) != KEY_ID_SIZE or len(self.signature) != SIGNATURE_SIZE:
            raise InvalidValueError("malformed key id or signature")

    @property
    def is_delta(self) -> bool:
        return self.base_version is not None

    def signed_bytes(self) -> bytes:
        """What the signature covers, after PACKAGE_DOMAIN."""
        return cbor.encode(self._wire_unsigned())

    def _wire_unsigned(self) -> dict[str, cbor.Value]:
        return {
            "v": PACKAGE_FORMAT,
            "kind": self.kind.value,
            "ver": self.version,
            "base": self.base_version,
            "sum": self.checksum,
            "body": self.payload,
            "kid": self.key_id,
        }

    def verify(self, trusted: Iterable[VerifyKey]) -> Package:
        """Return the package if a trusted key with its key id signed it."""
        candidates = [key for key in trusted if key.key_id == self.key_id]
        if not candidates:
            raise SignatureError(f"package signed by unknown key {self.key_id.hex()}")
        for key in candidates:
            try:
                key.verify(self.signature, PACKAGE_DOMAIN, self.signed_bytes())
            except SignatureError:
                continue
            return self
        raise SignatureError(f"{self.kind} package {self.version} has a bad signature")

    def check_base(self, held_version: int | None) -> None:
        """Raise PackageError unless this package applies to state at `held_version`."""
        if self.base_version is not None and self.base_version != held_version:
            raise PackageError(
                f"{self.kind} delta {self.base_version}->{self.version} does not apply to "
                f"version {held_version}; fetch a full package"
            )

    def check_result(self, checksum: bytes) -> None:
        """Raise PackageError unless the applied state has the checksum the package names."""
        if checksum != self.checksum:
            raise PackageError(
                f"{self.kind} {self.version}: state checksum mismatch; fetch a full package"
            )


def sign_package(
    kind: PackageKind,
    version: int,
    base_version: int | None,
    checksum: bytes,
    payload: bytes,
    key: SigningKey,
) -> Package:
    unsigned = Package(
        kind, version, base_version, checksum, payload, key.key_id, bytes(SIGNATURE_SIZE)
    )
    signature = key.sign(PACKAGE_DOMAIN, unsigned.signed_bytes())
    return Package(kind, version, base_version, checksum, payload, key.key_id, signature)


def encode_package(package: Package) -> bytes:
    wire = package._wire_unsigned()
    wire["sig"] = package.signature
    return cbor.encode(wire)


def decode_package(data: bytes) -> Package:
    """Parse a package's bytes (the signature is checked by `Package.verify`)."""
    fields = Fields.of(cbor.decode(data, "package"), "package")
    fields.expect_keys({"v", "kind", "ver", "base", "sum", "body", "kid", "sig"})
    if fields.integer("v") != PACKAGE_FORMAT:
        raise DecodeError(f"package: unknown format {fields.integer('v')}")
    try:
        return Package(
            kind=fields.enum("kind", PackageKind),
            version=fields.integer("ver"),
            base_version=fields.optional_integer("base"),
            checksum=fields.blob("sum"),
            payload=fields.blob("body"),
            key_id=fields.blob("kid"),
            signature=fields.blob("sig"),
        )
    except InvalidValueError as error:
        raise DecodeError(f"package: {error}") from None
