"""What a reader saw: the value every reader adapter hands to the agent's decision.

A `Presentation` is one card tap or one QR scan, with the time it was read as a pair: the
monotonic clock (for intervals such as anti-passback, immune to clock steps) and UTC (for
the record). Both are supplied by the reader that made it; this module reads no clock.
A `CardRemoved` follows each card once it leaves the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Media(StrEnum):
    NFC = "nfc"
    QR = "qr"


class CardTechnology(StrEnum):
    """NFC Forum tag types: 2 (NTAG/Ultralight), 3 (FeliCa), 4 (ISO-DEP, 14443-4)."""

    TYPE2 = "type2"
    TYPE3 = "type3"
    TYPE4 = "type4"


@dataclass(frozen=True, slots=True)
class ReadTime:
    """When something was read: `time.monotonic()` seconds and an aware UTC datetime."""

    monotonic: float
    utc: datetime

    def __post_init__(self) -> None:
        if self.utc.utcoffset() != timedelta(0):
            raise ValueError("ReadTime.utc must be an aware datetime in UTC")


@dataclass(frozen=True, slots=True)
class Presentation:
    """One card tap or one QR scan, as read and before any decision.

    A card tap has the card's `uid` and `technology`, and its farebox NDEF record or
    APDU answer as `payload` when it carries one. `clash` says a second card was in the
    field: the tap must be refused, never guessed (the uid is the first card's). A QR scan
    has the scanned `text` with the scanner's framing and symbology prefix removed.
    """

    reader_id: str
    media: Media
    read_at: ReadTime
    text: str | None = None
    uid: bytes | None = None
    technology: CardTechnology | None = None
    payload: bytes | None = None
    clash: bool = False

    def __post_init__(self) -> None:
        if self.media is Media.QR:
            if self.text is None or self.uid is not None or self.clash:
                raise ValueError("a QR presentation has text and no card fields")
        elif self.text is not None or not self.uid or self.technology is None:
            raise ValueError("a card presentation has a uid and a technology, and no text")

    @property
    def token(self) -> str | None:
        """The card's token `nfc:<uid hex>`; None for a QR scan."""
        return None if self.uid is None else f"nfc:{self.uid.hex()}"


@dataclass(frozen=True, slots=True)
class CardRemoved:
    """The card with `uid` has left the reader's field."""

    reader_id: str
    uid: bytes
    read_at: ReadTime
