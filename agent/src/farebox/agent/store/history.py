"""Local rider history: this validator's recent taps per token, and used QR tickets.

The fare engine needs a rider's earlier taps of the fare day (transfers, caps), the
re-tap and anti-passback checks need the last ones. Rows are written in the same
transaction as the journal record they come from and pruned by age; a used ticket is
kept until the ticket itself expires, so a single-ride ticket can never ride twice here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from farebox.protocol.money import Money
from farebox.protocol.records import Location, Outcome, Reason, TapType

_COLUMNS = (
    "seq, time_ms, tap_type, outcome, reason, fare_minor, currency, product, category, route, stop"
)


@dataclass(frozen=True, slots=True)
class PastTap:
    """One earlier decision on a token at this validator."""

    seq: int
    time_ms: int
    tap_type: TapType
    outcome: Outcome
    reason: Reason
    fare: Money | None
    product: str | None
    category: str | None
    location: Location


@dataclass(frozen=True, slots=True)
class TicketUse:
    """A validation of a QR ticket: its id, and how long to remember it."""

    ticket_id: bytes
    until_ms: int


def add(conn: sqlite3.Connection, token: str, past: PastTap) -> None:
    """Insert `past` inside the caller's transaction."""
    fare = past.fare
    conn.execute(
        f"INSERT INTO history (token, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 (constant columns)
        (
            token,
            past.seq,
            past.time_ms,
            past.tap_type.value,
            past.outcome.value,
            past.reason.value,
            None if fare is None else fare.minor,
            None if fare is None else fare.currency,
            past.product,
            past.category,
            past.location.route,
            past.location.stop,
        ),
    )


def recent(conn: sqlite3.Connection, token: str, since_ms: int) -> tuple[PastTap, ...]:
    """The token's taps at or after `since_ms`, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM history WHERE token = ? AND time_ms >= ? ORDER BY seq",  # noqa: S608 (constant columns)
        (token, since_ms),
    ).fetchall()
    return tuple(
        PastTap(
            seq=seq,
            time_ms=time_ms,
            tap_type=TapType(tap_type),
            outcome=Outcome(outcome),
            reason=Reason(reason),
            fare=None if minor is None else Money(minor, currency),
            product=product,
            category=category,
            location=Location(route=route, stop=stop),
        )
        for (
            seq,
            time_ms,
            tap_type,
            outcome,
            reason,
            minor,
            currency,
            product,
            category,
            route,
            stop,
        ) in rows
    )


def use_ticket(conn: sqlite3.Connection, use: TicketUse) -> None:
    """Count one more use of a ticket inside the caller's transaction."""
    conn.execute(
        "INSERT INTO used_tickets (ticket_id, uses, until_ms) VALUES (?, 1, ?) "
        "ON CONFLICT (ticket_id) DO UPDATE SET uses = uses + 1",
        (use.ticket_id, use.until_ms),
    )


def ticket_uses(conn: sqlite3.Connection, ticket_id: bytes) -> int:
    row = conn.execute("SELECT uses FROM used_tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
    return 0 if row is None else int(row[0])


def prune(conn: sqlite3.Connection, before_ms: int, now_ms: int) -> None:
    """Forget taps older than `before_ms` and tickets expired by `now_ms`."""
    conn.execute("DELETE FROM history WHERE time_ms < ?", (before_ms,))
    conn.execute("DELETE FROM used_tickets WHERE until_ms < ?", (now_ms,))


def shed(conn: sqlite3.Connection, keep_ms: int) -> int:
    """Forget the taps older than `keep_ms` before the newest one; return how many.

    The journal's last resort for room: the fares a validator charged with less history
    (a weekly cap not seen) the server's settlement re-rates, a record it cannot journal
    is a rider at the gate turned away.
    """
    found = conn.execute(
        "DELETE FROM history WHERE time_ms < (SELECT max(time_ms) FROM history) - ?",
        (keep_ms,),
    )
    return found.rowcount
