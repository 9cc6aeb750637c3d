"""farebox QR tickets: CWT claims, signed as COSE_Sign1, in Base45 behind the prefix `FB1:`.

    text      = "FB1:" base45(cose)
    cose      = 18([protected, {}, claims, signature])   deterministic CBOR, tag required
    protected = {1: -8 (EdDSA) | -7 (ES256), 4: kid}
    claims    = {1: issuer, 4: valid_until, 5: valid_from, 6: issued_at, 7: ticket_id,
                 -65537: {1: product, 2: category, 3: uses}}

`verify` raises one documented error per way a ticket can be refused; its `now` is an
argument because the protocol reads no clock:

- DecodeError: too long, wrong prefix, bad Base45, CBOR that is not a deterministic
  COSE_Sign1 of exactly these claims;
- UnknownKeyError: no trusted key has the kid; or none belongs to the ticket's issuer, was
  valid when the ticket was issued and is not past its `not_after`; or the ticket lives
  longer (`exp - iat`) than the key set's `max_lifetime`;
- AlgorithmError: no algorithm in the protected header, one other than EdDSA or ES256, or
  one that does not match the keys with the kid;
- SignatureError: an ES256 signature in its high-`s` form, or no key with the kid
  verifies the signature;
- TicketNotYetValidError / TicketExpiredError: a genuine ticket outside [valid_from,
  valid_until).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
from farebox.protocol.tickets import base45, cose, cwt
from farebox.protocol.tickets.issuers import IssuerKeySet

PREFIX = "FB1:"
FAREBOX_CLAIM = -65537  # the first integer RFC 8392 leaves to private use
PRODUCT = 1
CATEGORY = 2
USES = 3
# A real ticket is about 180 characters; refusing far longer text bounds the work a
# hostile code can cause before any signature is checked.
MAX_TEXT = 1024
MAX_TICKET_ID_BYTES = 32


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a ticket's issuer vouches for; times in seconds since the epoch (UTC)."""

    ticket_id: bytes
    issuer: str
    product: str
    category: str
    uses: int
    issued_at: int
    valid_from: int
    valid_until: int

    def __post_init__(self) -> None:
        if not 1 <= len(self.ticket_id) <= MAX_TICKET_ID_BYTES:
            raise InvalidValueError(f"ticket id must be 1 to {MAX_TICKET_ID_BYTES} bytes")
        if not (self.issuer and self.product and self.category):
            raise InvalidValueError("issuer, product and category must not be empty")
        if self.uses < 1:
            raise InvalidValueError("a ticket allows at least one use")
        if not 0 <= self.valid_from < self.valid_until or self.issued_at < 0:
            raise InvalidValueError("validity must be a non-empty window of times >= 0")

    def claims(self) -> cwt.Claims:
        return cwt.Claims(
            issuer=self.issuer,
            expires=self.valid_until,
            not_before=self.valid_from,
            issued_at=self.issued_at,
            cwt_id=self.ticket_id,
            other={
                FAREBOX_CLAIM: {PRODUCT: self.product, CATEGORY: self.category, USES: self.uses}
            },
        )


def issue(ticket: Ticket, key: cose.PrivateKey, *, kid: bytes) -> str:
    """Sign `ticket` with the issuer's key and return the text for the QR code."""
    signed = cose.sign(cwt.encode_claims(ticket.claims()), key, kid=kid)
    return PREFIX + base45.encode(signed)


def verify(text: str, keys: IssuerKeySet, now: int) -> Ticket:
    """Check a scanned ticket against the trusted issuer keys at time `now`."""
    message = decode(text)
    ticket = _ticket(cwt.decode_claims(message.payload))
    with_kid = keys.with_kid(message.kid or b"")
    if not with_kid:
        raise UnknownKeyError(f"ticket: no trusted key has the key id {message.kid!r}")
    algorithm = message.algorithm
    fitting = [key for key in with_kid if key.algorithm is algorithm]
    if not fitting:
        raise AlgorithmError(f"ticket: {algorithm.name} does not match the keys with its kid")
    # Choosing keys by still-unverified claims is safe: a key chosen here must then
    # verify the signature over those very claims.
    trusted = [
        key.public_key
        for key in fitting
        if key.issuer == ticket.issuer and key.trusted_at(ticket.issued_at, now)
    ]
    if not trusted:
        raise UnknownKeyError(
            f"ticket: no key of issuer {ticket.issuer!r} with this kid was valid at issue"
            " and is still trusted now"
        )
    # `iat` picks the key, and whoever holds a key writes `iat`: without this bound a
    # retired key could still sign tickets, backdated into its window, that never expire.
    lifetime = ticket.valid_until - ticket.issued_at
    if lifetime > keys.max_lifetime:
        raise UnknownKeyError(
            f"ticket: lives {lifetime} s from issue, longer than the {keys.max_lifetime} s"
            " the issuer keys are trusted for"
        )
    if algorithm is cose.Algorithm.ES256 and not cose.is_low_s(message.signature):
        raise SignatureError("ticket: an ES256 signature must use the low-s form")
    cose.verify(message, trusted)
    if now < ticket.valid_from:
        raise TicketNotYetValidError(f"ticket: valid from {ticket.valid_from}, now {now}")
    if now >= ticket.valid_until:
        raise TicketExpiredError(f"ticket: expired at {ticket.valid_until}, now {now}")
    return ticket


def decode(text: str) -> cose.Sign1:
    """Take a ticket's text apart down to its COSE_Sign1 message, checking only its form."""
    if not isinstance(text, str):
        raise DecodeError(f"ticket: expected text, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise DecodeError(f"ticket: {len(text)} characters, at most {MAX_TEXT} allowed")
    if not text.startswith(PREFIX):
        raise DecodeError(f"ticket: does not start with {PREFIX!r}")
    data = base45.decode(text[len(PREFIX) :])
    # Deterministic CBOR leaves no unsigned byte free to vary; `verify` refuses the other
    # form of an ES256 signature. Single use is still keyed by the ticket id, not the bytes.
    content = cbor.decode_tagged(data, cose.SIGN1_TAG, "ticket")
    message = cose.from_item(content, require_tag=False)  # decode_tagged required the tag
    if message.unprotected:
        raise DecodeError("ticket: the unprotected header must be empty")
    return message


def _ticket(claims: cwt.Claims) -> Ticket:
    if set(claims.other) != {FAREBOX_CLAIM}:
        raise DecodeError("ticket: claims other than farebox's own are not allowed")
    own = claims.other[FAREBOX_CLAIM]
    if not isinstance(own, Mapping) or set(own) != {PRODUCT, CATEGORY, USES}:
        raise DecodeError("ticket: the farebox claim must map product, category and uses")
    product, category, uses = own[PRODUCT], own[CATEGORY], own[USES]
    if not isinstance(product, str) or not isinstance(category, str):
        raise DecodeError("ticket: product and category must be text")
    if not isinstance(uses, int) or isinstance(uses, bool):
        raise DecodeError("ticket: uses must be an integer")
    if claims.subject is not None or claims.audience is not None:
        raise DecodeError("ticket: sub and aud are not used by farebox tickets")
    if (
        claims.issuer is None
        or claims.cwt_id is None
        or claims.issued_at is None
        or claims.not_before is None
        or claims.expires is None
    ):
        raise DecodeError("ticket: iss, cti, iat, nbf and exp are all required")
    try:
        return Ticket(
            ticket_id=claims.cwt_id,
            issuer=claims.issuer,
            product=product,
            category=category,
            uses=uses,
            issued_at=claims.issued_at,
            valid_from=claims.not_before,
            valid_until=claims.expires,
        )
    except InvalidValueError as error:
        raise DecodeError(f"ticket: {error}") from None
