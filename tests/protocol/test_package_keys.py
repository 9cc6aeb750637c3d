"""Package keys vouched for link by link: what a device comes to trust after a rotation."""

from __future__ import annotations

import dataclasses

import pytest

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError
from farebox.protocol.keys import SigningKey
from farebox.protocol.package_keys import (
    decode_endorsements,
    encode_endorsements,
    endorse,
    trusted_after,
)

FIRST, SECOND, THIRD = (SigningKey.from_seed(bytes([n]) * 32) for n in (1, 2, 3))


def test_each_rotation_is_trusted_through_the_key_before_it() -> None:
    chain = [endorse(SECOND.verify_key, FIRST), endorse(THIRD.verify_key, SECOND)]
    trusted = trusted_after([FIRST.verify_key], decode_endorsements(encode_endorsements(chain)))
    assert trusted == (FIRST.verify_key, SECOND.verify_key, THIRD.verify_key)
    # A device enrolled after the first rotation already holds two of them.
    assert trusted_after([FIRST.verify_key, SECOND.verify_key], chain)[-1] == THIRD.verify_key


def test_forged_and_foreign_endorsements_add_nothing() -> None:
    stranger = SigningKey.from_seed(bytes([9]) * 32)
    genuine = endorse(SECOND.verify_key, FIRST)
    forged = dataclasses.replace(genuine, signature=bytes(64))
    foreign = endorse(stranger.verify_key, stranger)
    claimed = dataclasses.replace(endorse(stranger.verify_key, stranger), signer=FIRST.key_id)
    for chain in ([forged], [foreign], [claimed], [endorse(THIRD.verify_key, SECOND)]):
        assert trusted_after([FIRST.verify_key], chain) == (FIRST.verify_key,)


def test_malformed_endorsements_are_refused() -> None:
    link = endorse(SECOND.verify_key, FIRST)
    good: dict[str, cbor.Value] = {"key": link.key.raw, "kid": link.signer, "sig": link.signature}
    wires: list[cbor.Value] = [
        {"v": 2, "links": [good]},
        {"v": 1},
        {"v": 1, "links": [{**good, "kid": b"short"}]},
        {"v": 1, "links": [{**good, "key": bytes(31)}]},
        {"v": 1, "links": [{**good, "extra": 1}]},
    ]
    for wire in wires:
        with pytest.raises(DecodeError):
            decode_endorsements(cbor.encode(wire))
