from __future__ import annotations

import dataclasses

import pytest

from farebox.protocol.auth import (
    HEADER_SIGNATURE,
    HEADER_TIME,
    RequestProof,
    sign_request,
    verify_request,
)
from farebox.protocol.errors import DecodeError, SignatureError, StaleRequestError
from farebox.protocol.keys import SigningKey

KEY = SigningKey.from_seed(b"\x17" * 32)
NOW = 1_795_680_000_000
NONCE = bytes(range(16))
BODY = b"\xa1\x61a\x01"


def proof(**changes: object) -> RequestProof:
    signed = sign_request(KEY, "bus-017", "POST", "/v1/batches", BODY, time_ms=NOW, nonce=NONCE)
    return dataclasses.replace(signed, **changes)  # type: ignore[arg-type]


def test_a_signed_request_verifies_after_a_trip_through_headers() -> None:
    received = RequestProof.from_headers(proof().headers())
    assert received == proof()
    verify_request(received, KEY.verify_key, "post", "/v1/batches", BODY, now_ms=NOW + 1000)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("PUT", "/v1/batches", BODY), ("POST", "/v1/heartbeat", BODY), ("POST", "/v1/batches", b"")],
)
def test_method_path_and_body_are_all_covered(method: str, path: str, body: bytes) -> None:
    with pytest.raises(SignatureError):
        verify_request(proof(), KEY.verify_key, method, path, body, now_ms=NOW)


def test_another_nonce_or_time_breaks_the_signature() -> None:
    with pytest.raises(SignatureError):
        verify_request(proof(nonce=b"\x00" * 16), KEY.verify_key, "POST", "/v1/batches", BODY,
                       now_ms=NOW)  # fmt: skip
    with pytest.raises(SignatureError):
        verify_request(proof(time_ms=NOW + 1), KEY.verify_key, "POST", "/v1/batches", BODY,
                       now_ms=NOW)  # fmt: skip


@pytest.mark.parametrize("now", [NOW + 300_001, NOW - 300_001, 0])
def test_a_request_outside_the_window_is_stale(now: int) -> None:
    with pytest.raises(StaleRequestError, match="window"):
        verify_request(proof(), KEY.verify_key, "POST", "/v1/batches", BODY, now_ms=now)


def test_a_device_clock_at_1970_is_stale_not_a_crash() -> None:
    at_1970 = sign_request(KEY, "bus-017", "POST", "/p", b"", time_ms=5_000, nonce=NONCE)
    with pytest.raises(StaleRequestError):
        verify_request(at_1970, KEY.verify_key, "POST", "/p", b"", now_ms=NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {**proof().headers(), HEADER_TIME: "soon"},
        {**proof().headers(), HEADER_SIGNATURE: "!!!"},
        {**proof().headers(), HEADER_SIGNATURE: "AAAA"},
    ],
)
def test_missing_or_malformed_headers_are_decode_errors(headers: dict[str, str]) -> None:
    with pytest.raises(DecodeError):
        RequestProof.from_headers(headers)
