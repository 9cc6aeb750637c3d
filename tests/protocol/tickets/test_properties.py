"""Properties of the ticket formats: round trips, tamper evidence, only documented errors."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from farebox.protocol import cbor
from farebox.protocol.errors import (
    DecodeError,
    ProtocolError,
    RemoteProtocolError,
    UnknownKeyError,
)
from farebox.protocol.tickets import base45, cose, cwt, ticket
from farebox.protocol.tickets.issuers import DEFAULT_MAX_LIFETIME, IssuerKey, IssuerKeySet

SIGNER = Ed25519PrivateKey.from_private_bytes(bytes(32))
KID = b"kid1"
KEYS = IssuerKeySet((IssuerKey.of(SIGNER, kid=KID, issuer="op", valid_from=0),))

seconds = st.integers(min_value=0, max_value=2**40)
tickets = st.builds(
    lambda ticket_id, product, category, uses, start, length: ticket.Ticket(
        ticket_id, "op", product, category, uses, start, start, start + length
    ),
    st.binary(min_size=1, max_size=32),
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.integers(min_value=1, max_value=2**32),
    seconds,
    st.integers(min_value=1, max_value=DEFAULT_MAX_LIFETIME),
)


@given(st.binary(max_size=300))
def test_base45_round_trips(data: bytes) -> None:
    assert base45.decode(base45.encode(data)) == data


@given(st.text(max_size=60))
def test_base45_decoding_any_text_raises_only_decode_errors(text: str) -> None:
    with contextlib.suppress(RemoteProtocolError):
        assert base45.encode(base45.decode(text)) == text


@given(tickets)
def test_tickets_round_trip(value: ticket.Ticket) -> None:
    assert ticket.verify(ticket.issue(value, SIGNER, kid=KID), KEYS, value.valid_from) == value


@given(tickets, st.integers(min_value=1, max_value=2**32))
def test_a_ticket_living_longer_than_the_key_set_allows_is_refused(
    value: ticket.Ticket, excess: int
) -> None:
    longer = dataclasses.replace(value, valid_until=value.issued_at + KEYS.max_lifetime + excess)
    with pytest.raises(UnknownKeyError, match="longer than"):
        ticket.verify(ticket.issue(longer, SIGNER, kid=KID), KEYS, longer.valid_from)


@given(tickets, st.data())
def test_any_flipped_byte_is_refused(value: ticket.Ticket, data: st.DataObject) -> None:
    signed = bytearray(base45.decode(ticket.issue(value, SIGNER, kid=KID)[len(ticket.PREFIX) :]))
    index = data.draw(st.integers(min_value=0, max_value=len(signed) - 1))
    signed[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    tampered = ticket.PREFIX + base45.encode(bytes(signed))
    try:
        ticket.verify(tampered, KEYS, value.valid_from)
    except RemoteProtocolError:
        return
    raise AssertionError(f"a ticket with byte {index} changed was accepted")


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_documented_errors(data: bytes) -> None:
    for attempt in (
        lambda: ticket.verify(ticket.PREFIX + base45.encode(data), KEYS, 0),
        lambda: cose.verify(cose.decode(data), [SIGNER.public_key()]),
        lambda: cwt.decode_claims(data),
        lambda: cwt.decode_token(data),
    ):
        with contextlib.suppress(ProtocolError):
            attempt()


@given(st.text(max_size=300))
def test_random_text_raises_only_documented_errors(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        ticket.verify(text, KEYS, 0)


wire_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


@given(wire_values)
def test_any_key_set_wire_value_decodes_or_raises_decode_error(value: object) -> None:
    with contextlib.suppress(DecodeError):
        IssuerKeySet.from_wire(value)


@given(st.lists(st.binary(min_size=1, max_size=16), max_size=4), seconds)
def test_key_sets_round_trip_through_cbor(kids: list[bytes], start: int) -> None:
    keys = IssuerKeySet(
        tuple(IssuerKey.of(SIGNER, kid=kid, issuer="op", valid_from=start) for kid in kids)
    )
    assert IssuerKeySet.from_wire(cbor.decode(cbor.encode(keys.to_wire()))) == keys  # type: ignore[arg-type]
