"""COSE_Sign1 (RFC 9052) with EdDSA (Ed25519) and ES256, and nothing weaker or looser.

A message is read strictly: one CBOR item, no trailing bytes, the COSE_Sign1 tag 18
(required unless the caller says the context already implies it), four fields of the right
types, an attached payload, no header label both protected and unprotected, no critical
headers. Verification then requires:

- the algorithm in the *protected* header (an unprotected one could be swapped by anyone);
- the algorithm to be EdDSA (-8) or ES256 (-7), and to match the type of the key;
- one of the caller's candidate keys to verify the signature (several keys may share a key
  id during a rotation: every one is tried).

An empty protected header is signed as a zero-length byte string even when it was sent as
an encoded empty map (`A0`), as RFC 9052 section 4.4 builds the Sig_structure.

`sign` writes deterministic CBOR (farebox.protocol.cbor) and, for ES256, the low-`s` form of
the signature; `verify` accepts either `s`, as the standard does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from farebox.protocol import cbor
from farebox.protocol.errors import AlgorithmError, DecodeError, SignatureError

SIGN1_TAG = 18
ALG = 1
CRIT = 2
KID = 4

PublicKey: TypeAlias = Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey: TypeAlias = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
Header: TypeAlias = Mapping[int | str, object]

# The order of P-256's base point. An ECDSA signature (r, s) verifies as (r, n - s) too, so
# `sign` writes the lower of the two and farebox tickets refuse the higher.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class Algorithm(IntEnum):
    """The signature algorithms farebox accepts, by their COSE identifiers."""

    ES256 = -7
    EDDSA = -8


@dataclass(frozen=True, slots=True)
class Sign1:
    """A decoded COSE_Sign1 message; nothing in it is trusted until `verify` says so."""

    protected_bytes: bytes
    protected: Header
    unprotected: Header
    payload: bytes
    signature: bytes

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm named in the protected header, or AlgorithmError."""
        if ALG not in self.protected:
            raise AlgorithmError("COSE: no algorithm in the protected header")
        value = self.protected[ALG]
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return Algorithm(value)
            except ValueError:
                pass
        raise AlgorithmError(f"COSE: algorithm {value!r} is not allowed (EdDSA or ES256 only)")

    @property
    def kid(self) -> bytes | None:
        """The key id, from the protected header or else the unprotected one."""
        value = self.protected.get(KID, self.unprotected.get(KID))
        if value is not None and not isinstance(value, bytes):
            raise DecodeError(f"COSE: key id must be a byte string, got {type(value).__name__}")
        return value


def decode(data: bytes, *, require_tag: bool = True) -> Sign1:
    """Read a COSE_Sign1 message, or raise DecodeError saying what is wrong with it."""
    return from_item(cbor.parse(data, "COSE_Sign1"), require_tag=require_tag)


def from_item(item: object, *, require_tag: bool = True) -> Sign1:
    """Read a COSE_Sign1 message from an already decoded CBOR item."""
    if isinstance(item, cbor2.CBORTag):
        if item.tag != SIGN1_TAG:
            raise DecodeError(f"COSE_Sign1: tag {item.tag}, expected {SIGN1_TAG}")
        item = item.value
    elif require_tag:
        raise DecodeError(f"COSE_Sign1: the tag {SIGN1_TAG} is required")
    if not isinstance(item, Sequence) or isinstance(item, str | bytes) or len(item) != 4:
        raise DecodeError("COSE_Sign1: expected an array of four fields")
    protected_bytes, unprotected, payload, signature = item
    if not isinstance(protected_bytes, bytes):
        raise DecodeError("COSE_Sign1: the protected header must be a byte string")
    protected: Header = {}
    if protected_bytes:
        protected = _header(cbor.parse(protected_bytes, "COSE protected header"), "protected")
    unprotected = _header(unprotected, "unprotected")
    if payload is None:
        raise DecodeError("COSE_Sign1: detached payloads are not supported")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise DecodeError("COSE_Sign1: payload and signature must be byte strings")
    both = set(protected) & set(unprotected)
    if both:
        raise DecodeError(f"COSE_Sign1: header label(s) {sorted(map(str, both))} appear twice")
    if CRIT in protected or CRIT in unprotected:
        raise DecodeError("COSE_Sign1: critical header parameters are not supported")
    return Sign1(protected_bytes, protected, unprotected, payload, signature)


def _header(value: object, which: str) -> Header:
    if not isinstance(value, Mapping):
        raise DecodeError(f"COSE_Sign1: the {which} header must be a map")
    for label in value:
        if not isinstance(label, int | str) or isinstance(label, bool):
            raise DecodeError(f"COSE_Sign1: {which} header label {label!r} is not int or text")
    return dict(value)


def to_be_signed(message: Sign1, external_aad: bytes = b"") -> bytes:
    """The Sig_structure bytes (RFC 9052 section 4.4) that the signature covers."""
    body_protected = message.protected_bytes if message.protected else b""
    return _sig_structure(body_protected, message.payload, external_aad)


def _sig_structure(body_protected: bytes, payload: bytes, external_aad: bytes) -> bytes:
    return cbor.encode(["Signature1", body_protected, external_aad, payload])


def verify(message: Sign1, keys: Iterable[PublicKey], external_aad: bytes = b"") -> PublicKey:
    """Return the first of `keys` whose signature verifies; raise SignatureError if none."""
    algorithm = message.algorithm
    fitting = [key for key in keys if _fits(algorithm, key)]
    if not fitting:
        raise AlgorithmError(f"COSE: no candidate key fits the algorithm {algorithm.name}")
    data = to_be_signed(message, external_aad)
    for key in fitting:
        if _verifies(algorithm, key, message.signature, data):
            return key
    raise SignatureError("COSE: the signature does not verify with any candidate key")


def _fits(algorithm: Algorithm, key: PublicKey) -> bool:
    if algorithm is Algorithm.EDDSA:
        return isinstance(key, Ed25519PublicKey)
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)


def _verifies(algorithm: Algorithm, key: PublicKey, signature: bytes, data: bytes) -> bool:
    if len(signature) != 64:
        return False
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, data)
        else:
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    """The algorithm a key signs with; AlgorithmError for any key other than Ed25519 or P-256."""
    if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        return Algorithm.EDDSA
    if isinstance(key.curve, ec.SECP256R1):
        return Algorithm.ES256
    raise AlgorithmError(f"COSE: curve {key.curve.name} is not allowed (EdDSA or ES256 only)")


def sign(payload: bytes, key: PrivateKey, *, kid: bytes, external_aad: bytes = b"") -> bytes:
    """A tagged COSE_Sign1 message with the algorithm and key id in the protected header."""
    algorithm = algorithm_of(key)
    protected = cbor.encode({ALG: int(algorithm), KID: kid})
    data = _sig_structure(protected, payload, external_aad)
    if isinstance(key, Ed25519PrivateKey):
        signature = key.sign(data)
    else:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        s = min(s, P256_ORDER - s)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    content = cbor.deterministic([protected, {}, payload, signature])
    return cbor2.dumps(cbor2.CBORTag(SIGN1_TAG, content))


def is_low_s(signature: bytes) -> bool:
    """Whether an ES256 signature (r and s, 32 bytes each) has the lower of its two `s`."""
    return int.from_bytes(signature[32:], "big") <= P256_ORDER // 2
