"""Small builders for the ledger tests: tenge, Almaty times, taps and top-ups."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from farebox.protocol.money import Money
from farebox.server.ledger.accounts import Channel
from farebox.server.ledger.posting import FareTap, TopUp

ALMATY = ZoneInfo("Asia/Almaty")


def kzt(tenge: int) -> Money:
    return Money(tenge * 100, "KZT")


def at(day: int, clock: str) -> int:
    """UTC milliseconds of a local Almaty time on a day of March 2026 (the 2nd is a Monday)."""
    hour, minute = (int(part) for part in clock.split(":"))
    return int(datetime(2026, 3, day, hour, minute, tzinfo=ALMATY).timestamp() * 1000)


def tap(
    device: str,
    seq: int,
    token: str,
    when: int,
    fare: int = 200,
    route: str = "12",
    carrier: str = "citybus",
) -> FareTap:
    return FareTap(device, seq, token, when, carrier, route, kzt(fare), stop="s1", category="adult")


def top_up(token: str, tenge: int, payment: str, when: int = 0) -> TopUp:
    return TopUp(token, kzt(tenge), Channel.SMS, payment, when)
