"""Package keys vouched for by the keys before them: how a key rotation reaches devices.

A device learns the server's package keys when it enrolls. When the server rotates its
key, the key that signed until then signs the new one: an endorsement. The server serves
its endorsements in the order its keys were made, and a device that meets a package
signed by a key it does not know fetches them and trusts each new key that a key it
trusts by then has endorsed, link by link (docs/protocol.md, "Package keys").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError, SignatureError
from farebox.protocol.keys import KEY_ID_SIZE, SIGNATURE_SIZE, SigningKey, VerifyKey
from farebox.protocol.wire import Fields

ENDORSEMENT_DOMAIN = b"farebox/package-key/v1\x00"
ENDORSEMENTS_FORMAT = 1
_LINK_KEYS = frozenset({"key", "kid", "sig"})


@dataclass(frozen=True, slots=True)
class Endorsement:
    """`key` vouched for by the package key whose id is `signer`."""

    key: VerifyKey
    signer: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signer, bytes) or len(self.signer) != KEY_ID_SIZE:
            raise InvalidValueError(f"a key id is {KEY_ID_SIZE} bytes")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise InvalidValueError(f"an Ed25519 signature is {SIGNATURE_SIZE} bytes")


def endorse(key: VerifyKey, signer: SigningKey) -> Endorsement:
    """`signer` vouches for `key`."""
    return Endorsement(key, signer.key_id, signer.sign(ENDORSEMENT_DOMAIN, key.raw))


def trusted_after(
    trusted: Iterable[VerifyKey], chain: Iterable[Endorsement]
) -> tuple[VerifyKey, ...]:
    """`trusted` and, in order, each key of `chain` endorsed by a key trusted by then.

    A link whose signer is not trusted, or whose signature does not verify, adds nothing:
    a forged or foreign endorsement can never make a device trust a key.
    """
    known = list(dict.fromkeys(trusted))
    for link in chain:
        if link.key in known:
            continue
        for signer in (key for key in known if key.key_id == link.signer):
            try:
                signer.verify(link.signature, ENDORSEMENT_DOMAIN, link.key.raw)
            except SignatureError:
                continue
            known.append(link.key)
            break
    return tuple(known)


def encode_endorsements(chain: Iterable[Endorsement]) -> bytes:
    links: list[cbor.Value] = [
        {"key": link.key.raw, "kid": link.signer, "sig": link.signature} for link in chain
    ]
    return cbor.encode({"v": ENDORSEMENTS_FORMAT, "links": links})


def decode_endorsements(data: bytes) -> tuple[Endorsement, ...]:
    """Parse a server's endorsements (their signatures are checked by `trusted_after`)."""
    fields = Fields.of(cbor.decode(data, "endorsements"), "endorsements")
    fields.expect_keys({"v", "links"})
    if fields.integer("v") != ENDORSEMENTS_FORMAT:
        raise DecodeError(f"endorsements: unknown format {fields.integer('v')}")
    chain = []
    for index, item in enumerate(fields.list_of("links", dict)):
        link = Fields(item, f"endorsements.links[{index}]")
        link.expect_keys(_LINK_KEYS)
        try:
            chain.append(
                Endorsement(VerifyKey(link.blob("key")), link.blob("kid"), link.blob("sig"))
            )
        except InvalidValueError as error:
            raise DecodeError(f"{link.path}: {error}") from None
    return tuple(chain)
