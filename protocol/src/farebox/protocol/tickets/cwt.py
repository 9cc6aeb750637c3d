"""CBOR Web Token claims (RFC 8392) carried in a COSE_Sign1 message.

The registered claims get typed fields; any other claim (farebox's own ticket claims among
them) is kept as it came, by its integer or text key. Times are NumericDate in whole
seconds: a fractional time is refused, because nothing farebox issues has one and two
encodings of one instant would make the same ticket look like two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cbor2

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.tickets import cose

CWT_TAG = 61

ISS = 1
SUB = 2
AUD = 3
EXP = 4
NBF = 5
IAT = 6
CTI = 7

_TEXT_CLAIMS = {ISS: "iss", SUB: "sub", AUD: "aud"}
_TIME_CLAIMS = {EXP: "exp", NBF: "nbf", IAT: "iat"}
_REGISTERED: frozenset[int | str] = frozenset({ISS, SUB, AUD, EXP, NBF, IAT, CTI})


@dataclass(frozen=True, slots=True)
class Claims:
    """A CWT claims set: the registered claims typed, every other claim in `other`."""

    issuer: str | None = None
    subject: str | None = None
    audience: str | None = None
    expires: int | None = None
    not_before: int | None = None
    issued_at: int | None = None
    cwt_id: bytes | None = None
    other: Mapping[int | str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = set(self.other) & _REGISTERED
        if clash:
            raise InvalidValueError(f"claims {sorted(clash)} belong in their own fields")

    def to_map(self) -> dict[int | str, object]:
        """The claims as a CBOR map, registered claims by their integer keys."""
        registered: dict[int | str, object] = {
            ISS: self.issuer,
            SUB: self.subject,
            AUD: self.audience,
            EXP: self.expires,
            NBF: self.not_before,
            IAT: self.issued_at,
            CTI: self.cwt_id,
        }
        present = {key: value for key, value in registered.items() if value is not None}
        return present | dict(self.other)


def encode_claims(claims: Claims) -> bytes:
    """The claims set in deterministic CBOR, ready to be a COSE payload.

    TypeError for a claim value outside farebox's CBOR types (a float, a tag): farebox
    issues none, though `decode_claims` reads them as RFC 8392 allows.
    """
    return cbor2.dumps(cbor.deterministic(claims.to_map()))


def decode_claims(payload: bytes) -> Claims:
    """Read a claims set, or raise DecodeError naming the claim that is wrong."""
    value = cbor.parse(payload, "CWT claims")
    if not isinstance(value, Mapping):
        raise DecodeError("CWT claims: expected a map")
    texts: dict[int, str | None] = {}
    times: dict[int, int | None] = {}
    other: dict[int | str, object] = {}
    for key, item in value.items():
        if not isinstance(key, int | str) or isinstance(key, bool):
            raise DecodeError(f"CWT claims: key {key!r} is neither an integer nor text")
        if key in _TEXT_CLAIMS:
            if not isinstance(item, str):
                raise DecodeError(f"CWT claims: {_TEXT_CLAIMS[key]} must be text")
            texts[key] = item
        elif key in _TIME_CLAIMS:
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise DecodeError(f"CWT claims: {_TIME_CLAIMS[key]} must be whole seconds")
            times[key] = item
        elif key == CTI:
            if not isinstance(item, bytes):
                raise DecodeError("CWT claims: cti must be a byte string")
        else:
            other[key] = item
    cti = value.get(CTI)
    return Claims(
        issuer=texts.get(ISS),
        subject=texts.get(SUB),
        audience=texts.get(AUD),
        expires=times.get(EXP),
        not_before=times.get(NBF),
        issued_at=times.get(IAT),
        cwt_id=cti if isinstance(cti, bytes) else None,
        other=other,
    )


def decode_token(data: bytes) -> cose.Sign1:
    """Read a signed CWT: a COSE_Sign1 message, optionally wrapped in the CWT tag 61."""
    item = cbor.parse(data, "CWT")
    if isinstance(item, cbor2.CBORTag) and item.tag == CWT_TAG:
        item = item.value
    return cose.from_item(item)
