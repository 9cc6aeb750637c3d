"""COSE_Sign1 against the COSE working group's published examples, and farebox's rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from farebox.protocol.errors import AlgorithmError, DecodeError, SignatureError
from farebox.protocol.tickets import cose

VECTORS = json.loads((Path(__file__).parent / "vectors" / "cose_wg_sign1.json").read_text())[
    "vectors"
]
ERRORS: dict[str, type[Exception]] = {
    "decode": DecodeError,
    "algorithm": AlgorithmError,
    "signature": SignatureError,
}


def public_key(spec: dict[str, str]) -> Any:
    """The vector's key; Ed448 and P-384 load so that farebox can refuse them itself."""
    x = bytes.fromhex(spec["x"])
    if spec["kind"] == "Ed25519":
        return Ed25519PublicKey.from_public_bytes(x)
    if spec["kind"] == "Ed448":
        return Ed448PublicKey.from_public_bytes(x)
    curve = ec.SECP256R1() if spec["kind"] == "P-256" else ec.SECP384R1()
    return ec.EllipticCurvePublicKey.from_encoded_point(
        curve, b"\x04" + x + bytes.fromhex(spec["y"])
    )


def check(vector: dict[str, Any], *, require_tag: bool = True) -> None:
    message = cose.decode(bytes.fromhex(vector["cbor"]), require_tag=require_tag)
    cose.verify(message, [public_key(vector["key"])], bytes.fromhex(vector["external_aad"]))


@pytest.mark.parametrize("vector", VECTORS, ids=lambda vector: vector["name"])
def test_each_working_group_example_meets_farebox_rules(vector: dict[str, Any]) -> None:
    if vector["farebox"] == "pass":
        check(vector)
    else:
        with pytest.raises(ERRORS[vector["farebox"]]):
            check(vector)


@pytest.mark.parametrize(
    "vector",
    [vector for vector in VECTORS if vector["to_be_signed"]],
    ids=lambda vector: vector["name"],
)
def test_sig_structure_matches_the_published_to_be_signed_bytes(vector: dict[str, Any]) -> None:
    message = cose.decode(bytes.fromhex(vector["cbor"]), require_tag=False)
    aad = bytes.fromhex(vector["external_aad"])
    assert cose.to_be_signed(message, aad).hex() == vector["to_be_signed"]


def test_an_empty_protected_header_sent_as_a0_is_signed_as_an_empty_string() -> None:
    vector = next(vector for vector in VECTORS if vector["name"].endswith("sign-pass-01"))
    message = cose.decode(bytes.fromhex(vector["cbor"]))
    assert message.protected_bytes == b"\xa0"
    assert message.protected == {}
    key = public_key(vector["key"])
    # The signature is genuine: only farebox's rule (alg must be protected) refuses it.
    signature = message.signature
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key.verify(der, cose.to_be_signed(message), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(AlgorithmError, match="no algorithm in the protected header"):
        cose.verify(message, [key])


def test_an_untagged_message_passes_only_when_the_caller_waives_the_tag() -> None:
    vector = next(vector for vector in VECTORS if vector["name"].endswith("sign-pass-03"))
    with pytest.raises(DecodeError, match="tag 18 is required"):
        check(vector)
    check(vector, require_tag=False)


def test_ed25519_signing_reproduces_the_published_signature() -> None:
    vector = next(vector for vector in VECTORS if vector["name"].endswith("eddsa-sig-01"))
    published = cose.decode(bytes.fromhex(vector["cbor"]))
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["key"]["d"]))
    assert key.sign(cose.to_be_signed(published)) == published.signature


def test_sign_then_verify_with_both_algorithms() -> None:
    for key in (Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())):
        message = cose.decode(cose.sign(b"payload", key, kid=b"k1", external_aad=b"aad"))
        assert message.kid == b"k1"
        assert message.protected == {cose.ALG: cose.algorithm_of(key), cose.KID: b"k1"}
        assert cose.verify(message, [key.public_key()], b"aad") == key.public_key()
        with pytest.raises(SignatureError):
            cose.verify(message, [key.public_key()], b"other aad")


def test_every_key_sharing_a_kid_is_tried_and_mismatched_types_are_skipped() -> None:
    signer = Ed25519PrivateKey.generate()
    message = cose.decode(cose.sign(b"x", signer, kid=b"k"))
    decoys = [Ed25519PrivateKey.generate().public_key() for _ in range(3)]
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert cose.verify(message, [p256, *decoys, signer.public_key()]) == signer.public_key()
    with pytest.raises(AlgorithmError, match="no candidate key fits"):
        cose.verify(message, [p256])
    with pytest.raises(SignatureError, match="does not verify"):
        cose.verify(message, decoys)


def test_an_es256_message_is_refused_for_a_p384_key() -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    message = cose.decode(cose.sign(b"x", signer, kid=b"k"))
    with pytest.raises(AlgorithmError):
        cose.verify(message, [ec.generate_private_key(ec.SECP384R1()).public_key()])
    with pytest.raises(AlgorithmError, match="not allowed"):
        cose.sign(b"x", ec.generate_private_key(ec.SECP384R1()), kid=b"k")


def sign1(protected: object, unprotected: object, payload: object, signature: object) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty input"),
        (b"\xd2", "not well-formed"),
        (sign1(b"\xa1\x01\x27", {}, b"p", b"s") + b"\x00", "trailing bytes"),
        (cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"p"])), "four fields"),
        (cbor2.dumps(cbor2.CBORTag(18, {})), "four fields"),
        (sign1("text", {}, b"p", b"s"), "protected header must be a byte string"),
        (sign1(b"\x82\x01\x02", {}, b"p", b"s"), "protected header must be a map"),
        (sign1(b"\xa1\x01", {}, b"p", b"s"), "not well-formed"),
        (sign1(b"\xa1\x01\x27", [], b"p", b"s"), "unprotected header must be a map"),
        (sign1(b"\xa1\x01\x27", {1: -8}, b"p", b"s"), "appear twice"),
        (sign1(b"\xa1\x01\x27", {2: [1]}, b"p", b"s"), "critical"),
        (sign1(b"\xa1\x01\x27", {}, None, b"s"), "detached"),
        (sign1(b"\xa1\x01\x27", {}, "p", b"s"), "must be byte strings"),
        (sign1(b"\xa1\x01\x27", {b"x": 1}, b"p", b"s"), "not int or text"),
    ],
)
def test_malformed_messages_are_decode_errors(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        cose.decode(data)


def test_a_key_id_that_is_not_bytes_is_a_decode_error() -> None:
    message = cose.decode(sign1(b"\xa1\x01\x27", {4: "text"}, b"p", b"s" * 64))
    with pytest.raises(DecodeError, match="key id"):
        _ = message.kid


def test_es256_signing_writes_the_low_s_form_that_verify_also_accepts_flipped() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    # Each signature has an even chance of a high s before it is normalised.
    for payload in range(40):
        message = cose.decode(cose.sign(bytes([payload]), key, kid=b"k"))
        assert cose.is_low_s(message.signature)
        r, s = message.signature[:32], int.from_bytes(message.signature[32:], "big")
        flipped = cose.Sign1(
            message.protected_bytes,
            message.protected,
            message.unprotected,
            message.payload,
            r + (cose.P256_ORDER - s).to_bytes(32, "big"),
        )
        # RFC 9052 does not ask for low s, so the generic verifier takes both forms.
        assert not cose.is_low_s(flipped.signature)
        assert cose.verify(flipped, [key.public_key()]) == key.public_key()
