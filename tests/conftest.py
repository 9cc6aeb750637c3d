"""Fixtures shared by every part's tests: Hypothesis profiles and the PostgreSQL cluster."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

from tests.support.postgres import Cluster, server_bin_dir, throwaway_cluster

IN_CI = os.environ.get("CI") == "true"

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if IN_CI else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster for the whole session; missing PostgreSQL fails CI."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL server binaries not found (run packaging/scripts/ensure-postgres)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with throwaway_cluster(bin_dir) as cluster:
        yield cluster


@pytest.fixture
async def postgres_dsn(postgres_cluster: Cluster) -> AsyncIterator[str]:
    """A new, empty database for one test, dropped afterwards (over a new connection: the
    test may have restarted the server)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _administer(postgres_cluster, f'CREATE DATABASE "{name}"')
    yield postgres_cluster.dsn(name)
    await _administer(postgres_cluster, f'DROP DATABASE "{name}" WITH (FORCE)')


async def _administer(cluster: Cluster, sql: str) -> None:
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(sql)
    finally:
        await admin.close()
