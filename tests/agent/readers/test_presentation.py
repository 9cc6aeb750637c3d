"""The Presentation value: what a reader may and may not hand over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from farebox.agent.presentation import CardTechnology, Media, Presentation, ReadTime

AT = ReadTime(monotonic=12.5, utc=datetime(2026, 11, 26, 8, 0, tzinfo=UTC))


def test_a_card_has_a_token_and_a_scan_has_none() -> None:
    card = Presentation("g", Media.NFC, AT, uid=b"\x04\xa1", technology=CardTechnology.TYPE2)
    assert card.token == "nfc:04a1"
    scan = Presentation("g", Media.QR, AT, text="FB1:X")
    assert scan.token is None


@pytest.mark.parametrize(
    "fields",
    [
        {"media": Media.QR},
        {"media": Media.QR, "text": "x", "uid": b"\x01"},
        {"media": Media.QR, "text": "x", "clash": True},
        {"media": Media.NFC, "uid": b"\x01"},
        {"media": Media.NFC, "uid": b"", "technology": CardTechnology.TYPE2},
        {"media": Media.NFC, "uid": b"\x01", "technology": CardTechnology.TYPE2, "text": "x"},
    ],
)
def test_inconsistent_presentations_cannot_be_made(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="presentation"):
        Presentation("g", read_at=AT, **fields)  # type: ignore[arg-type]


def test_read_times_are_aware_and_in_utc() -> None:
    with pytest.raises(ValueError, match="UTC"):
        ReadTime(1.0, datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5))))
    with pytest.raises(ValueError, match="UTC"):
        ReadTime(1.0, datetime(2026, 1, 1))  # noqa: DTZ001  # the naive time refused here
