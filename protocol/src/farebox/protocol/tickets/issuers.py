"""The ticket issuers' public keys that validators trust, with their validity windows.

The key set travels to validators inside the signed key-set package, so it has a plain
wire form (a map of text keys holding a list of maps) and a strict decoder. Rotation
without downtime: publish the new key with a future `valid_from` before the issuer starts
signing with it, and give the old key a `valid_until`; tickets signed before that time
keep verifying with the old key until the tickets themselves expire.

A key is chosen by the ticket's own `iat`, which whoever holds the key can write. So the
key set bounds every ticket's lifetime (`exp - iat`) by `max_lifetime`: a retired key's
tickets, backdated or not, are all expired `max_lifetime` after its `valid_until`. A key's
`not_after` ends its trust outright, for every ticket, once that time has come.

Wire form (CBOR, deterministic when encoded by farebox.protocol.cbor):

    {"keys": [{"kid": bstr, "issuer": tstr, "alg": -8 | -7, "key": bstr,
               "valid_from": uint, "valid_until": uint | null,
               "not_after": uint | null}, ...],
     "max_lifetime": uint}

`key` is the raw 32-byte Ed25519 public key for EdDSA (-8), or the 65-byte uncompressed
SEC1 point for ES256 (-7). Times are seconds since the epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from farebox.protocol.errors import DecodeError, InvalidValueError
from farebox.protocol.tickets.cose import Algorithm, PrivateKey, PublicKey, algorithm_of
from farebox.protocol.wire import Fields

MAX_KID_BYTES = 16
# A calendar month's pass issued on its first day. It bounds what a retired or leaked key
# can still do, so a key set whose issuers sell only single rides should set it far lower.
DEFAULT_MAX_LIFETIME = 31 * 86_400
_KEY_FIELDS = ("kid", "issuer", "alg", "key", "valid_from", "valid_until", "not_after")


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """One issuer's public key, trusted for tickets issued in [valid_from, valid_until).

    `not_after`, if set, is when the key stops verifying any ticket at all.
    """

    kid: bytes
    issuer: str
    algorithm: Algorithm
    public_bytes: bytes
    valid_from: int
    valid_until: int | None = None
    not_after: int | None = None
    public_key: PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.kid) <= MAX_KID_BYTES:
            raise InvalidValueError(f"key id must be 1 to {MAX_KID_BYTES} bytes")
        if not self.issuer:
            raise InvalidValueError("issuer must not be empty")
        if self.valid_from < 0 or (
            self.valid_until is not None and self.valid_until <= self.valid_from
        ):
            raise InvalidValueError("key validity must be a non-empty window from time >= 0")
        if self.not_after is not None and self.not_after <= self.valid_from:
            raise InvalidValueError("a key's not_after must come after its valid_from")
        object.__setattr__(self, "public_key", _load(self.algorithm, self.public_bytes))

    @classmethod
    def of(
        cls,
        key: PrivateKey | PublicKey,
        *,
        kid: bytes,
        issuer: str,
        valid_from: int,
        valid_until: int | None = None,
        not_after: int | None = None,
    ) -> IssuerKey:
        """The trusted entry for `key` (its public half if a private key is given)."""
        public = key.public_key() if isinstance(key, PrivateKey) else key
        algorithm = algorithm_of(public)
        if isinstance(public, Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = public.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        return cls(kid, issuer, algorithm, raw, valid_from, valid_until, not_after)

    def trusted_at(self, issued_at: int, now: int) -> bool:
        """Whether a ticket issued at `issued_at` may be signed by this key, checked at `now`."""
        return (
            self.valid_from <= issued_at
            and (self.valid_until is None or issued_at < self.valid_until)
            and (self.not_after is None or now < self.not_after)
        )

    def to_wire(self) -> dict[str, object]:
        return {
            "kid": self.kid,
            "issuer": self.issuer,
            "alg": int(self.algorithm),
            "key": self.public_bytes,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "not_after": self.not_after,
        }


def _load(algorithm: Algorithm, raw: bytes) -> PublicKey:
    try:
        if algorithm is Algorithm.EDDSA:
            return Ed25519PublicKey.from_public_bytes(raw)
        if len(raw) != 65:
            raise ValueError("an ES256 key must be a 65-byte uncompressed point")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as error:
        raise InvalidValueError(f"not a valid {algorithm.name} public key: {error}") from None


@dataclass(frozen=True, slots=True)
class IssuerKeySet:
    """Every issuer key a validator trusts, looked up by key id, and the longest ticket lifetime.

    `max_lifetime` is in seconds: no ticket may have `exp - iat` longer than this.
    """

    keys: tuple[IssuerKey, ...]
    max_lifetime: int = DEFAULT_MAX_LIFETIME
    _by_kid: dict[bytes, tuple[IssuerKey, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.max_lifetime < 1:
            raise InvalidValueError("max_lifetime must be at least one second")
        index: dict[bytes, list[IssuerKey]] = {}
        for key in self.keys:
            index.setdefault(key.kid, []).append(key)
        object.__setattr__(self, "_by_kid", {kid: tuple(keys) for kid, keys in index.items()})

    def with_kid(self, kid: bytes) -> tuple[IssuerKey, ...]:
        """Every key sharing `kid` (several during a rotation or a re-listing)."""
        return self._by_kid.get(kid, ())

    def to_wire(self) -> dict[str, object]:
        """The plain CBOR-able form carried in the key-set package."""
        return {"keys": [key.to_wire() for key in self.keys], "max_lifetime": self.max_lifetime}

    @classmethod
    def from_wire(cls, value: object) -> IssuerKeySet:
        """Read the wire form strictly, or raise DecodeError naming the bad entry."""
        top = Fields.of(value, "issuer_keys")
        top.expect_keys(("keys", "max_lifetime"))
        entries = top.list_of("keys", dict)
        keys = tuple(_key_from_wire(entry, index) for index, entry in enumerate(entries))
        try:
            return cls(keys, top.integer("max_lifetime"))
        except InvalidValueError as error:
            raise DecodeError(f"{top.path}: {error}") from None


def _key_from_wire(value: object, index: int) -> IssuerKey:
    entry = Fields.of(value, f"issuer_keys.keys[{index}]")
    entry.expect_keys(_KEY_FIELDS)
    kid, issuer, raw = entry.blob("kid"), entry.text("issuer"), entry.blob("key")
    alg, valid_from = entry.integer("alg"), entry.integer("valid_from")
    valid_until, not_after = (
        entry.optional_integer("valid_until"),
        entry.optional_integer("not_after"),
    )
    try:
        return IssuerKey(kid, issuer, Algorithm(alg), raw, valid_from, valid_until, not_after)
    except ValueError as error:  # an unknown algorithm, or a value failing validation
        raise DecodeError(f"{entry.path}: {error}") from None
