"""Device request authentication: every HTTP request a device makes is signed by its key.

The signature covers the method, the path with its query, the device's timestamp, a
random nonce and the SHA-256 of the body, so a request can be neither altered nor moved
to another endpoint. The server refuses a timestamp outside its window (and tells its own
time, so a device with a wrong clock can correct its offset and retry) and remembers
nonces for the length of the window to refuse replays; that memory is the server's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from farebox.protocol import cbor
from farebox.protocol.errors import DecodeError, InvalidValueError, StaleRequestError
from farebox.protocol.keys import SIGNATURE_SIZE, SigningKey, VerifyKey
from farebox.protocol.records import check_device_id, check_time_ms

REQUEST_DOMAIN = b"farebox/request/v1\x00"
_DECIMAL = re.compile(r"[0-9]{1,16}", re.ASCII)
NONCE_SIZE = 16
# Five minutes either side: wide enough for a bus whose clock drifts between depot visits,
# narrow enough that the server's nonce memory stays small.
DEFAULT_WINDOW_MS = 300_000

HEADER_DEVICE = "Farebox-Device"
HEADER_TIME = "Farebox-Time"
HEADER_NONCE = "Farebox-Nonce"
HEADER_SIGNATURE = "Farebox-Signature"
HEADER_SERVER_TIME = "Farebox-Server-Time"


@dataclass(frozen=True, slots=True)
class RequestProof:
    """Who signed a request, when, with which nonce, and the signature."""

    device: str
    time_ms: int
    nonce: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_device_id(self.device)
        check_time_ms(self.time_ms)
        if len(self.nonce) != NONCE_SIZE:
            raise InvalidValueError(f"a request nonce is {NONCE_SIZE} bytes")
        if len(self.signature) != SIGNATURE_SIZE:
            raise InvalidValueError(f"a signature is {SIGNATURE_SIZE} bytes")

    def headers(self) -> dict[str, str]:
        return {
            HEADER_DEVICE: self.device,
            HEADER_TIME: str(self.time_ms),
            HEADER_NONCE: self.nonce.hex(),
            HEADER_SIGNATURE: base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RequestProof:
        """Read the proof from request headers; raise DecodeError if absent or malformed."""
        missing = [h for h in (HEADER_DEVICE, HEADER_TIME, HEADER_NONCE, HEADER_SIGNATURE)
                   if h not in headers]  # fmt: skip
        if missing:
            raise DecodeError(f"request is not signed: missing {', '.join(missing)}")
        try:
            if not _DECIMAL.fullmatch(headers[HEADER_TIME]):
                raise ValueError(f"{HEADER_TIME} must be decimal milliseconds")
            return cls(
                device=headers[HEADER_DEVICE],
                time_ms=int(headers[HEADER_TIME]),
                nonce=bytes.fromhex(headers[HEADER_NONCE]),
                signature=base64.b64decode(headers[HEADER_SIGNATURE], validate=True),
            )
        except (ValueError, binascii.Error) as error:
            raise DecodeError(f"malformed request signature headers: {error}") from None


def request_bytes(
    device: str, method: str, path: str, time_ms: int, nonce: bytes, body: bytes
) -> bytes:
    """What a request signature covers, after REQUEST_DOMAIN."""
    return cbor.encode(
        {
            "dev": device,
            "m": method.upper(),
            "p": path,
            "t": time_ms,
            "n": nonce,
            "b": hashlib.sha256(body).digest(),
        }
    )


def sign_request(
    key: SigningKey,
    device: str,
    method: str,
    path: str,
    body: bytes,
    *,
    time_ms: int,
    nonce: bytes,
) -> RequestProof:
    """Sign a request; the caller supplies the time and a fresh random nonce."""
    signature = key.sign(REQUEST_DOMAIN, request_bytes(device, method, path, time_ms, nonce, body))
    return RequestProof(device, time_ms, nonce, signature)


def verify_request(
    proof: RequestProof,
    key: VerifyKey,
    method: str,
    path: str,
    body: bytes,
    *,
    now_ms: int,
    window_ms: int = DEFAULT_WINDOW_MS,
) -> None:
    """Raise StaleRequestError or SignatureError unless the request is fresh and genuine."""
    skew = proof.time_ms - now_ms
    if abs(skew) > window_ms:
        raise StaleRequestError(
            f"request time is {skew / 1000:+.0f} s from the server's; the window is "
            f"{window_ms / 1000:.0f} s"
        )
    signed = request_bytes(proof.device, method, path, proof.time_ms, proof.nonce, body)
    key.verify(proof.signature, REQUEST_DOMAIN, signed)
