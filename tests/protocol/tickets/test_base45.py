"""Base45 against the RFC 9285 examples, and its strict decoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farebox.protocol.errors import DecodeError
from farebox.protocol.tickets import base45

RFC = json.loads((Path(__file__).parent / "vectors" / "rfc9285.json").read_text())


@pytest.mark.parametrize("case", RFC["encode"], ids=lambda case: case["text"])
def test_rfc_9285_encoding_examples(case: dict[str, str]) -> None:
    assert base45.encode(bytes.fromhex(case["bytes"])) == case["text"]
    assert base45.decode(case["text"]) == bytes.fromhex(case["bytes"])


@pytest.mark.parametrize("case", RFC["decode"], ids=lambda case: case["text"])
def test_rfc_9285_decoding_examples(case: dict[str, str]) -> None:
    assert base45.decode(case["text"]) == bytes.fromhex(case["bytes"])


@pytest.mark.parametrize("case", RFC["invalid"], ids=lambda case: case["text"])
def test_rfc_9285_invalid_examples(case: dict[str, str]) -> None:
    with pytest.raises(DecodeError, match="out of range"):
        base45.decode(case["text"])


def test_empty_input_is_empty_output() -> None:
    assert base45.encode(b"") == ""
    assert base45.decode("") == b""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("BB8A", "single character"),  # a truncated code leaves one character over
        ("bb8", "not in the alphabet"),  # lower case is not Base45
        ("BB\n", "not in the alphabet"),
        (":::", "out of range"),
        ("::", "out of range"),  # a two-character group above 255
    ],
)
def test_malformed_text_is_a_decode_error(text: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        base45.decode(text)
