"""CWT claims against RFC 8392 appendix A: the claims set and the signed example."""

from __future__ import annotations

import json
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.tickets import cose, cwt

RFC = json.loads((Path(__file__).parent / "vectors" / "rfc8392.json").read_text())


def rfc_key() -> ec.EllipticCurvePublicKey:
    cose_key = cbor2.loads(bytes.fromhex(RFC["cose_key_p256"]))
    point = b"\x04" + cose_key[-2] + cose_key[-3]
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def test_the_a1_claims_set_decodes_to_the_registered_claims() -> None:
    expected = RFC["claims"]
    claims = cwt.decode_claims(bytes.fromhex(expected["cbor"]))
    assert claims == cwt.Claims(
        issuer=expected["iss"],
        subject=expected["sub"],
        audience=expected["aud"],
        expires=expected["exp"],
        not_before=expected["nbf"],
        issued_at=expected["iat"],
        cwt_id=bytes.fromhex(expected["cti"]),
    )
    assert cwt.encode_claims(claims) == bytes.fromhex(expected["cbor"])


def test_the_a3_signed_cwt_verifies_with_the_a23_key() -> None:
    message = cwt.decode_token(bytes.fromhex(RFC["signed_cwt"]))
    assert message.kid == b"AsymmetricECDSA256"
    assert message.algorithm is cose.Algorithm.ES256
    key = rfc_key()
    assert cose.verify(message, [key]) is key
    assert cwt.decode_claims(message.payload).subject == "erikw"


def test_the_cwt_tag_61_may_wrap_the_sign1_message() -> None:
    inner = cbor2.loads(bytes.fromhex(RFC["signed_cwt"]))
    wrapped = cbor2.dumps(cbor2.CBORTag(cwt.CWT_TAG, inner))
    cose.verify(cwt.decode_token(wrapped), [rfc_key()])


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({1: 5}, "iss must be text"),
        ({4: 1.5}, "exp must be whole seconds"),
        ({6: -1}, "iat must be whole seconds"),
        ({5: True}, "nbf must be whole seconds"),
        ({7: "text"}, "cti must be a byte string"),
        ({1.5: 1}, "neither an integer nor text"),
        ([1, 2], "expected a map"),
    ],
)
def test_malformed_claims_are_decode_errors(claims: object, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        cwt.decode_claims(cbor2.dumps(claims))


def test_private_claims_are_kept_and_registered_ones_cannot_hide_among_them() -> None:
    claims = cwt.decode_claims(cbor2.dumps({1: "op", -65537: {1: "x"}, "name": 3}))
    assert claims.other == {-65537: {1: "x"}, "name": 3}
    with pytest.raises(InvalidValueError):
        cwt.Claims(other={cwt.EXP: 1})


def test_claims_are_encoded_with_keys_in_the_order_of_their_encoded_bytes() -> None:
    # RFC 7049's canonical order (shorter keys first) would put -1 (20) before 24 (18 18).
    claims = cwt.Claims(other={-1: 0, 24: 0})
    assert cwt.encode_claims(claims).hex() == "a2181800" + "2000"
    assert cwt.encode_claims(claims) == cbor.encode({24: 0, -1: 0})


def test_a_claim_value_outside_farebox_cbor_types_cannot_be_encoded() -> None:
    with pytest.raises(TypeError, match="float"):
        cwt.encode_claims(cwt.Claims(other={-65537: 1.5}))
