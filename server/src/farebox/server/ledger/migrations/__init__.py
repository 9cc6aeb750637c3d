"""Schema migrations, one numbered SQL file per step, side by side for both databases.

`sqlite/NNNN_name.sql` and `postgres/NNNN_name.sql` describe the same step; a store applies
the steps above its recorded version, each in the transaction that records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from farebox.server.errors import MigrationError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(dialect: str) -> tuple[Migration, ...]:
    """Every migration of `dialect` ("sqlite" or "postgres"), in order."""
    folder = resources.files(__name__).joinpath(dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(number), name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    return tuple(found)


SCHEMA_VERSION = "SELECT max(version) FROM ledger_schema"
"""The schema version a store is at (NULL before its first step)."""


def refuse_newer(found: int, latest: int) -> None:
    """MigrationError if a store's schema `found` is past this code's `latest` (a downgrade)."""
    if found > latest:
        raise MigrationError(f"the store's schema version {found} is newer than this code's")


def require_current(found: int, dialect: str) -> None:
    """MigrationError unless a `dialect` database at schema `found` is at this code's.

    A server upgraded without `farebox-server init`, or pointed at a new file, would
    otherwise answer every request with an error about a missing table or column.
    """
    latest = migrations(dialect)[-1].version
    refuse_newer(found, latest)
    if found == latest:
        return
    raise MigrationError(
        ("the store has no schema" if found == 0 else f"the store is at schema version {found}")
        + f", this code needs {latest}: run `farebox-server init` with the same --db first"
    )
