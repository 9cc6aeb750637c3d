"""Ed25519 keys: a device's signing key, the server's package key, and their key ids.

A key id is the first 8 bytes of the SHA-256 of the raw 32-byte public key. Signing
always prefixes a domain string naming what is signed, so a signature over a checkpoint
can never pass as a signature over a package.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from farebox.protocol.errors import InvalidValueError, SignatureError

KEY_ID_SIZE = 8
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


def key_id_of(public: bytes) -> bytes:
    return hashlib.sha256(public).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A raw Ed25519 public key that checks signatures."""

    raw: bytes
    key_id: bytes = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != PUBLIC_KEY_SIZE:
            raise InvalidValueError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes")
        try:
            key = Ed25519PublicKey.from_public_bytes(self.raw)
        except ValueError as error:
            raise InvalidValueError(f"not an Ed25519 public key: {error}") from None
        object.__setattr__(self, "key_id", key_id_of(self.raw))
        object.__setattr__(self, "_key", key)

    def verify(self, signature: bytes, domain: bytes, message: bytes) -> None:
        """Raise SignatureError unless `signature` signs `domain + message` with this key."""
        try:
            self._key.verify(signature, domain + message)
        except InvalidSignature:
            raise SignatureError(
                f"signature does not verify with key {self.key_id.hex()}"
            ) from None


class SigningKey:
    """An Ed25519 private key. It never leaves the machine it was made on."""

    __slots__ = ("_key", "verify_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.verify_key = VerifyKey(
            key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    @classmethod
    def generate(cls) -> Self:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Self:
        """The key made from a 32-byte seed (test vectors use fixed seeds)."""
        if len(seed) != PUBLIC_KEY_SIZE:
            raise InvalidValueError("an Ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, pem: bytes) -> Self:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as error:
            raise InvalidValueError(f"not a PEM private key: {error}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidValueError(f"expected an Ed25519 key, got {type(key).__name__}")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def key_id(self) -> bytes:
        return self.verify_key.key_id

    def sign(self, domain: bytes, message: bytes) -> bytes:
        return self._key.sign(domain + message)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id.hex()})"
