"""farebox tickets: issue and verify, and one documented error for each way to refuse one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farebox.protocol import cbor
from farebox.protocol.errors import (
    AlgorithmError,
    DecodeError,
    InvalidValueError,
    SignatureError,
    TicketExpiredError,
    TicketNotYetValidError,
    UnknownKeyError,
)
from farebox.protocol.tickets import base45, cose, cwt, ticket
from farebox.protocol.tickets.issuers import DEFAULT_MAX_LIFETIME, IssuerKey, IssuerKeySet

ISSUED = 1_790_000_000
SIGNER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KID = b"\x0a\x0b\x0c\x0d"
TICKET = ticket.Ticket(
    ticket_id=bytes.fromhex("00112233445566778899aabbccddeeff"),
    issuer="almaty-transit",
    product="single",
    category="adult",
    uses=1,
    issued_at=ISSUED,
    valid_from=ISSUED,
    valid_until=ISSUED + 90 * 60,
)
KEYS = IssuerKeySet((IssuerKey.of(SIGNER, kid=KID, issuer="almaty-transit", valid_from=0),))


def forge(text: str, change: object) -> str:
    """Re-encode a ticket after `change` edits its decoded [protected, unprotected, ...]."""
    item = cbor2.loads(base45.decode(text[len(ticket.PREFIX) :]))
    fields = list(item.value)
    change(fields)  # type: ignore[operator]
    data = cbor2.dumps(cbor2.CBORTag(18, cbor.deterministic(fields)))
    return ticket.PREFIX + base45.encode(data)


def test_an_issued_ticket_verifies_inside_its_window() -> None:
    text = ticket.issue(TICKET, SIGNER, kid=KID)
    assert text.startswith("FB1:")
    assert len(text) < 256  # a QR code of version 10 at level Q holds it
    assert ticket.verify(text, KEYS, ISSUED) == TICKET
    assert ticket.verify(text, KEYS, TICKET.valid_until - 1) == TICKET


def test_es256_tickets_verify_too() -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    keys = IssuerKeySet((IssuerKey.of(signer, kid=KID, issuer="almaty-transit", valid_from=0),))
    assert ticket.verify(ticket.issue(TICKET, signer, kid=KID), keys, ISSUED) == TICKET


def test_expired_and_not_yet_valid_tickets_are_refused() -> None:
    text = ticket.issue(TICKET, SIGNER, kid=KID)
    with pytest.raises(TicketExpiredError):
        ticket.verify(text, KEYS, TICKET.valid_until)
    with pytest.raises(TicketNotYetValidError):
        ticket.verify(text, KEYS, TICKET.valid_from - 1)


def test_a_ticket_signed_by_an_untrusted_key_is_a_bad_signature() -> None:
    forged = ticket.issue(TICKET, Ed25519PrivateKey.generate(), kid=KID)
    with pytest.raises(SignatureError, match="does not verify"):
        ticket.verify(forged, KEYS, ISSUED)


def test_an_unknown_kid_is_refused() -> None:
    with pytest.raises(UnknownKeyError, match="no trusted key"):
        ticket.verify(ticket.issue(TICKET, SIGNER, kid=b"nope"), KEYS, ISSUED)


def test_an_algorithm_that_does_not_match_the_key_is_refused() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AlgorithmError, match="does not match"):
        ticket.verify(ticket.issue(TICKET, p256, kid=KID), KEYS, ISSUED)


@pytest.mark.parametrize(
    ("protected", "error"),
    [
        ({cose.KID: KID}, "no algorithm in the protected header"),
        ({cose.ALG: -35, cose.KID: KID}, "not allowed"),  # ES384
        ({cose.ALG: 5, cose.KID: KID}, "not allowed"),  # HMAC 256/256
    ],
)
def test_missing_or_disallowed_algorithms_are_refused(
    protected: dict[int, object], error: str
) -> None:
    def swap(fields: list[object]) -> None:
        fields[0] = cbor.encode(protected)  # type: ignore[arg-type]

    with pytest.raises(AlgorithmError, match=error):
        ticket.verify(forge(ticket.issue(TICKET, SIGNER, kid=KID), swap), KEYS, ISSUED)


def test_key_validity_windows_and_issuers_are_enforced() -> None:
    text = ticket.issue(TICKET, SIGNER, kid=KID)
    retired = IssuerKey.of(
        SIGNER, kid=KID, issuer="almaty-transit", valid_from=0, valid_until=ISSUED
    )
    future = IssuerKey.of(SIGNER, kid=KID, issuer="almaty-transit", valid_from=ISSUED + 1)
    other_issuer = IssuerKey.of(SIGNER, kid=KID, issuer="bishkek-bus", valid_from=0)
    for key in (retired, future, other_issuer):
        with pytest.raises(UnknownKeyError, match="valid at issue"):
            ticket.verify(text, IssuerKeySet((key,)), ISSUED)


def test_rotation_keeps_old_tickets_valid_and_tries_every_key_with_the_kid() -> None:
    old_text = ticket.issue(TICKET, SIGNER, kid=KID)
    successor = Ed25519PrivateKey.generate()
    later = ticket.Ticket(
        TICKET.ticket_id,
        TICKET.issuer,
        "single",
        "adult",
        1,
        ISSUED + 60,
        ISSUED + 60,
        ISSUED + 600,
    )
    new_text = ticket.issue(later, successor, kid=KID)  # a reused kid: both keys get tried
    keys = IssuerKeySet(
        (
            IssuerKey.of(
                SIGNER, kid=KID, issuer=TICKET.issuer, valid_from=0, valid_until=ISSUED + 60
            ),
            IssuerKey.of(successor, kid=KID, issuer=TICKET.issuer, valid_from=ISSUED + 60),
        )
    )
    assert ticket.verify(old_text, keys, ISSUED + 120) == TICKET
    assert ticket.verify(new_text, keys, ISSUED + 120) == later


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "does not start with"),
        ("HC1:6BFOXN", "does not start with"),
        ("FB1:" + "A" * 2000, "at most"),
        ("FB1:abc", "not in the alphabet"),
        ("FB1:BB8A", "single character"),
        ("FB1:" + base45.encode(b"\xff\xff"), "not well-formed"),
        ("FB1:" + base45.encode(cbor2.dumps([1, 2])), "tag 18 is required"),
    ],
)
def test_malformed_text_is_a_decode_error(text: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        ticket.verify(text, KEYS, ISSUED)


def test_truncated_tickets_are_decode_errors() -> None:
    text = ticket.issue(TICKET, SIGNER, kid=KID)
    for cut in range(len(ticket.PREFIX), len(text), 7):
        with pytest.raises(DecodeError):
            ticket.verify(text[:cut], KEYS, ISSUED)


def test_a_non_deterministic_encoding_is_refused() -> None:
    text = ticket.issue(TICKET, SIGNER, kid=KID)
    data = base45.decode(text[len(ticket.PREFIX) :])
    # the same array with its length written in a longer form than needed
    longer = data[:1] + b"\x98\x04" + data[2:]
    with pytest.raises(DecodeError, match="deterministic"):
        ticket.verify(ticket.PREFIX + base45.encode(longer), KEYS, ISSUED)


def test_maps_in_a_ticket_follow_the_key_order_of_farebox_cbor() -> None:
    text = ticket.issue(TICKET, SIGNER, kid=KID)

    def add_header(fields: list[object]) -> None:
        fields[1] = {24: 0, -1: 0}

    in_rfc8949_order = forge(text, add_header)
    data = base45.decode(in_rfc8949_order[len(ticket.PREFIX) :])
    assert bytes.fromhex("a2181800" + "2000") in data
    # Deterministic, so only farebox's own rule refuses this one.
    with pytest.raises(DecodeError, match="unprotected header must be empty"):
        ticket.verify(in_rfc8949_order, KEYS, ISSUED)
    # RFC 7049's canonical order (shorter keys first) is not farebox's deterministic form.
    length_first = data.replace(
        bytes.fromhex("a2181800" + "2000"), bytes.fromhex("a220001818" + "00")
    )
    with pytest.raises(DecodeError, match="deterministic"):
        ticket.verify(ticket.PREFIX + base45.encode(length_first), KEYS, ISSUED)


def test_any_failure_of_the_cbor_parser_is_a_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = base45.decode(ticket.issue(TICKET, SIGNER, kid=KID)[len(ticket.PREFIX) :])

    class FailingDecoder:
        """Stands in for a cbor2 release that lets a tag decoder's own error escape; the
        installed release wraps every one that could be found, so none can be had here."""

        def __init__(self, stream: object) -> None:
            pass

        def decode(self) -> object:
            raise ZeroDivisionError("a rational with denominator 0")

    monkeypatch.setattr(cbor2, "CBORDecoder", FailingDecoder)
    attempts: tuple[Callable[[], object], ...] = (
        lambda: ticket.verify(ticket.PREFIX + base45.encode(data), KEYS, ISSUED),
        lambda: cose.decode(data),
        lambda: cwt.decode_token(data),
        lambda: cwt.decode_claims(data),
        lambda: cbor.decode(data),
    )
    for attempt in attempts:
        with pytest.raises(DecodeError, match="not well-formed"):
            attempt()


def test_a_retired_key_cannot_sign_backdated_tickets_beyond_the_max_lifetime() -> None:
    day = 86_400
    retired = IssuerKeySet(
        (IssuerKey.of(SIGNER, kid=KID, issuer=TICKET.issuer, valid_from=0, valid_until=ISSUED),),
        max_lifetime=day,
    )
    later = ISSUED + 30 * day
    # Backdated into the key's window, valid long after the key was retired.
    backdated = replace(TICKET, issued_at=ISSUED - 1, valid_from=later, valid_until=later + 60)
    with pytest.raises(UnknownKeyError, match="longer than the 86400 s"):
        ticket.verify(ticket.issue(backdated, SIGNER, kid=KID), retired, later)
    # The longest ticket allowed: the exposure ends max_lifetime after retirement.
    longest = replace(TICKET, issued_at=ISSUED - 1, valid_until=ISSUED - 1 + day)
    text = ticket.issue(longest, SIGNER, kid=KID)
    assert ticket.verify(text, retired, ISSUED + day - 2) == longest
    with pytest.raises(TicketExpiredError):
        ticket.verify(text, retired, ISSUED - 1 + day)


def test_the_default_max_lifetime_admits_a_month_pass_and_no_more() -> None:
    assert KEYS.max_lifetime == DEFAULT_MAX_LIFETIME == 31 * 86_400
    month = replace(TICKET, valid_until=ISSUED + DEFAULT_MAX_LIFETIME)
    assert ticket.verify(ticket.issue(month, SIGNER, kid=KID), KEYS, ISSUED) == month
    longer = replace(month, valid_until=month.valid_until + 1)
    with pytest.raises(UnknownKeyError, match="longer than"):
        ticket.verify(ticket.issue(longer, SIGNER, kid=KID), KEYS, ISSUED)


def test_a_key_past_its_not_after_verifies_no_ticket() -> None:
    keys = IssuerKeySet(
        (IssuerKey.of(SIGNER, kid=KID, issuer=TICKET.issuer, valid_from=0, not_after=ISSUED + 60),)
    )
    text = ticket.issue(TICKET, SIGNER, kid=KID)
    assert ticket.verify(text, keys, ISSUED + 59) == TICKET
    with pytest.raises(UnknownKeyError, match="still trusted now"):
        ticket.verify(text, keys, ISSUED + 60)
    with pytest.raises(InvalidValueError, match="not_after"):
        IssuerKey.of(SIGNER, kid=KID, issuer=TICKET.issuer, valid_from=5, not_after=5)


def test_an_es256_ticket_with_the_other_s_is_refused() -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    keys = IssuerKeySet((IssuerKey.of(signer, kid=KID, issuer=TICKET.issuer, valid_from=0),))
    text = ticket.issue(TICKET, signer, kid=KID)

    def flip_s(fields: list[object]) -> None:
        signature = fields[3]
        assert isinstance(signature, bytes)
        s = int.from_bytes(signature[32:], "big")
        fields[3] = signature[:32] + (cose.P256_ORDER - s).to_bytes(32, "big")

    # The same signature, still valid to ECDSA, in other bytes: refused, so a ticket has one
    # encoding (single use is keyed by the ticket id all the same).
    with pytest.raises(SignatureError, match="low-s"):
        ticket.verify(forge(text, flip_s), keys, ISSUED)
    assert ticket.verify(text, keys, ISSUED) == TICKET


def test_an_unprotected_header_is_refused() -> None:
    def add_header(fields: list[object]) -> None:
        fields[1] = {3: 0}  # a content type, outside the signature

    with pytest.raises(DecodeError, match="unprotected header must be empty"):
        ticket.verify(forge(ticket.issue(TICKET, SIGNER, kid=KID), add_header), KEYS, ISSUED)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({1: "almaty-transit"}, "claims other than farebox's own"),
        ({-65537: {1: "single", 2: "adult"}}, "must map product, category and uses"),
        ({-65537: {1: 1, 2: "adult", 3: 1}}, "product and category must be text"),
        ({-65537: {1: "single", 2: "adult", 3: "1"}}, "uses must be an integer"),
        ({2: "x", -65537: {1: "single", 2: "adult", 3: 1}}, "sub and aud"),
        ({-65537: {1: "single", 2: "adult", 3: 1}}, "are all required"),
        (
            {1: "i", 4: 5, 5: 5, 6: 5, 7: b"t", -65537: {1: "s", 2: "a", 3: 1}},
            "non-empty window",
        ),
        ({1: "i", 7: b"t", -65537: [], 9: 1}, "claims other than farebox's own"),
    ],
)
def test_signed_but_malformed_claims_are_decode_errors(claims: object, reason: str) -> None:
    text = ticket.PREFIX + base45.encode(
        cose.sign(cbor2.dumps(cbor.deterministic(claims)), SIGNER, kid=KID)
    )
    with pytest.raises(DecodeError, match=reason):
        ticket.verify(text, KEYS, ISSUED)


@pytest.mark.parametrize(
    "change",
    [
        {"ticket_id": b""},
        {"issuer": ""},
        {"uses": 0},
        {"valid_until": ISSUED},
        {"issued_at": -1},
    ],
)
def test_an_invalid_ticket_cannot_be_constructed(change: dict[str, object]) -> None:
    values = {
        "ticket_id": b"t",
        "issuer": "i",
        "product": "p",
        "category": "c",
        "uses": 1,
        "issued_at": ISSUED,
        "valid_from": ISSUED,
        "valid_until": ISSUED + 1,
    } | change
    with pytest.raises(InvalidValueError):
        ticket.Ticket(**values)  # type: ignore[arg-type]


def test_the_key_set_round_trips_through_deterministic_cbor() -> None:
    keys = IssuerKeySet(
        (
            IssuerKey.of(SIGNER, kid=KID, issuer="a", valid_from=1, valid_until=2, not_after=9),
            IssuerKey.of(
                ec.generate_private_key(ec.SECP256R1()), kid=b"e", issuer="b", valid_from=0
            ),
        ),
        max_lifetime=3600,
    )
    wire = cbor.encode(keys.to_wire())  # type: ignore[arg-type]
    assert IssuerKeySet.from_wire(cbor.decode(wire)) == keys
    assert cbor.encode(IssuerKeySet.from_wire(cbor.decode(wire)).to_wire()) == wire  # type: ignore[arg-type]


def good_entry() -> dict[str, object]:
    return dict(KEYS.keys[0].to_wire())


def key_set(*entries: object, max_lifetime: object = 86_400) -> dict[str, object]:
    return {"keys": list(entries), "max_lifetime": max_lifetime}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([], "expected a map"),
        ({}, "missing field"),
        ({"keys": []}, "missing field.*max_lifetime"),
        (key_set() | {"extra": 1}, "unknown field"),
        (key_set(1), r"keys\[0\]"),
        (key_set(good_entry() | {"alg": -35}), "-35 is not a valid Algorithm"),
        (key_set(good_entry() | {"key": b"short"}), "not a valid EDDSA public key"),
        (key_set(good_entry() | {"kid": b""}), "key id must be"),
        (key_set(good_entry() | {"valid_until": 0}), "non-empty window"),
        (key_set(good_entry() | {"not_after": 0}), "not_after must come after"),
        (key_set(good_entry() | {"not_after": "soon"}), "not_after: expected an integer"),
        (key_set(good_entry() | {"issuer": 5}), "expected a text string"),
        (key_set({k: v for k, v in good_entry().items() if k != "kid"}), "missing"),
        (key_set(good_entry(), max_lifetime=0), "max_lifetime must be at least"),
        (key_set(good_entry(), max_lifetime=None), "max_lifetime: expected an integer"),
    ],
)
def test_a_malformed_key_set_is_a_decode_error(value: object, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        IssuerKeySet.from_wire(value)


def test_an_es256_key_must_be_an_uncompressed_point() -> None:
    entry = good_entry() | {"alg": -7, "key": b"\x02" + bytes(32)}
    with pytest.raises(DecodeError, match="65-byte"):
        IssuerKeySet.from_wire(key_set(entry))
