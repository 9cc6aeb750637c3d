"""State databases as an older agent left them: the schema just before a migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from farebox.agent.store import database, schema


def database_before(path: Path, migration: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a state database at `path` with every migration before `migration`, and no more."""
    names = [name for name, _ in schema.MIGRATIONS]
    with monkeypatch.context() as older:
        older.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[: names.index(migration)])
        database.connect(path, lock_timeout_ms=200).close()


def insert_cache(
    path: Path, kind: str, version: int, checksum: bytes, payload: bytes, applied_ms: int
) -> None:
    """A cache row with the columns every schema has had."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(
                "INSERT INTO caches (kind, version, checksum, payload, applied_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (kind, version, checksum, payload, applied_ms),
            )
    finally:
        conn.close()
