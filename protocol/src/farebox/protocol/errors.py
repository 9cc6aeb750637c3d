"""The errors of farebox.protocol, with one root.

    ProtocolError                 anything this package raises on purpose
    ├── LocalProtocolError        the caller broke the contract (a bad value, a wrong state)
    │   ├── InvalidValueError     a value failed validation on construction (also ValueError)
    │   └── CurrencyMismatchError money of two currencies met in one sum (also ValueError)
    └── RemoteProtocolError       the peer broke the contract; refuse what it sent
        ├── DecodeError           bytes that are not a well-formed message
        │   └── UnsupportedVersionError  a message of a protocol version we do not speak
        ├── SignatureError        a signature that does not verify, or an unknown key
        │   ├── UnknownKeyError   no trusted key has the key id (or none is valid then)
        │   └── AlgorithmError    an algorithm missing, not allowed, or not the key's
        ├── ChainError            records that do not continue the device's hash chain
        │   ├── GapError          a seq is missing: the batch starts after the cursor
        │   └── ForkError         a record's prev hash disagrees with the chain so far
        ├── PackageError          a package that cannot be applied (kind, base version, checksum)
        ├── StaleRequestError     a signed request stamped outside the accepted time window
        └── TicketValidityError   a genuine ticket used outside its validity window
            ├── TicketExpiredError      at or after its expiry
            └── TicketNotYetValidError  before its not-before time

Type errors (a float where money is expected) are Python's own TypeError: they are bugs in
the caller, not conditions to handle. Like h11, the split between local and remote tells
the I/O shell whether to fix its own code or to refuse the peer.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every error farebox.protocol raises on purpose."""


class LocalProtocolError(ProtocolError):
    """The caller used the API wrongly."""


class InvalidValueError(LocalProtocolError, ValueError):
    """A value failed validation when it was constructed."""


class CurrencyMismatchError(LocalProtocolError, ValueError):
    """Amounts in two currencies were combined."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks the protocol."""


class DecodeError(RemoteProtocolError):
    """Bytes that do not decode to a valid message."""


class UnsupportedVersionError(DecodeError):
    """A well-formed message of a protocol version this side does not accept."""


class SignatureError(RemoteProtocolError):
    """A signature failed to verify, or its key is unknown."""


class UnknownKeyError(SignatureError):
    """No trusted key has the message's key id, or none was valid when it was signed."""


class AlgorithmError(SignatureError):
    """The signature algorithm is missing, not allowed, or does not match the key."""


class ChainError(RemoteProtocolError):
    """Records that do not continue the hash chain from the cursor."""

    def __init__(self, message: str, *, expected_seq: int, expected_prev: bytes) -> None:
        super().__init__(message)
        self.expected_seq = expected_seq
        self.expected_prev = expected_prev


class GapError(ChainError):
    """A sequence number is missing between the cursor and the records."""


class ForkError(ChainError):
    """A record names a previous hash that differs from the chain's."""


class PackageError(RemoteProtocolError):
    """A signed package that cannot be applied as it stands."""


class StaleRequestError(RemoteProtocolError):
    """A device request whose timestamp is too far from the server's clock."""


class TicketValidityError(RemoteProtocolError):
    """A genuinely signed ticket presented outside its validity window."""


class TicketExpiredError(TicketValidityError):
    """The ticket's expiry time has passed."""


class TicketNotYetValidError(TicketValidityError):
    """The ticket's not-before time has not come yet."""
