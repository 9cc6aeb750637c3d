"""Schema migrations, one numbered SQL file per step, side by side for both databases.

`sqlite/NNNN_name.sql` and `postgres/NNNN_name.sql` describe the same step; a store applies
the steps above its recorded version, each in the transaction that records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


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
