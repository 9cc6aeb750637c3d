"""The state database's schema, as numbered migrations applied through sqlite-utils.

Each migration runs in one transaction together with the row that records it, so a
database is always at exactly one schema number, even after a power cut mid-upgrade.
Migrations are append-only: a released one is never edited, a change is a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def _journal(db: sqlite_utils.Database) -> None:
    # `seq` is the rowid: appends are cheap and the order is the chain's order.
    db.table("journal").create(
        {"seq": int, "raw": bytes, "digest": bytes, "time_ms": int, "acked_ms": int},
        pk="seq",
        not_null={"raw", "digest", "time_ms"},
    )
    db.table("meta").create({"key": str, "value": str}, pk="key", not_null={"value"})


def _caches(db: sqlite_utils.Database) -> None:
    db.table("caches").create(
        {"kind": str, "version": int, "checksum": bytes, "payload": bytes, "applied_ms": int},
        pk="kind",
        not_null={"version", "checksum", "payload", "applied_ms"},
    )


def _history(db: sqlite_utils.Database) -> None:
    db.table("history").create(
        {
            "seq": int,
            "token": str,
            "time_ms": int,
            "tap_type": str,
            "outcome": str,
            "reason": str,
            "fare_minor": int,
            "currency": str,
            "product": str,
            "category": str,
            "route": str,
            "stop": str,
        },
        pk="seq",
        not_null={"token", "time_ms", "tap_type", "outcome", "reason"},
    )
    db.table("history").create_index(["token", "time_ms"])
    db.table("history").create_index(["time_ms"])
    db.table("used_tickets").create(
        {"ticket_id": bytes, "uses": int, "until_ms": int},
        pk="ticket_id",
        not_null={"uses", "until_ms"},
    )


def _probe(db: sqlite_utils.Database) -> None:
    db.table("probe").create({"id": int, "filler": bytes}, pk="id")


def _earlier_tariffs(db: sqlite_utils.Database) -> None:
    # The one tariff kept beside the newest becomes the first of the earlier ones.
    db.execute(
        "UPDATE caches SET kind = 'tariff.earlier.' || version WHERE kind = 'tariff.previous'"
    )


def _stoplist_confirmed(db: sqlite_utils.Database) -> None:
    # When the server last confirmed each state current: applied, or answered that it has
    # nothing newer. A stoplist's age is counted from it.
    db.table("caches").add_column("confirmed_ms", int)
    db.execute("UPDATE caches SET confirmed_ms = applied_ms")


Migration = Callable[["sqlite_utils.Database"], None]

MIGRATIONS: tuple[tuple[str, Migration], ...] = (
    ("journal", _journal),
    ("caches", _caches),
    ("history", _history),
    ("probe", _probe),
    ("earlier_tariffs", _earlier_tariffs),
    ("stoplist_confirmed", _stoplist_confirmed),
)


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT MAX(number) FROM migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, now_ms: int) -> int:
    """Apply every migration the database lacks; return the schema number reached."""
    if current_version(conn) == len(MIGRATIONS):
        return len(MIGRATIONS)
    # sqlite-utils takes a sixth of the agent's start-up to import, and an up-to-date
    # database (every start but the first after an upgrade) does not need it.
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        db.table("migrations").create(
            {"number": int, "name": str, "applied_ms": int}, pk="number", if_not_exists=True
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    number = current_version(conn)
    for index, (name, apply) in enumerate(MIGRATIONS[number:], start=number + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            apply(db)
            db.table("migrations").insert({"number": index, "name": name, "applied_ms": now_ms})
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
