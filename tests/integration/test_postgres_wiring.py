"""Proves that the suite reaches a real PostgreSQL server (never skipped in CI)."""

from __future__ import annotations

import asyncpg
import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


async def test_a_real_server_answers_and_keeps_bytes_exactly(postgres_dsn: str) -> None:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        version = await connection.fetchval("SHOW server_version_num")
        assert int(version) >= 130000
        await connection.execute("CREATE TABLE blob (id int PRIMARY KEY, body bytea NOT NULL)")
        payload = bytes(range(256))
        await connection.execute("INSERT INTO blob VALUES (1, $1)", payload)
        assert await connection.fetchval("SELECT body FROM blob WHERE id = 1") == payload
    finally:
        await connection.close()
