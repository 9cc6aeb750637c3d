"""Request nonces: a replay is refused, and forgetting old nonces holds up no other device."""

from __future__ import annotations

import asyncio

import pytest

from farebox.protocol.enrollment import DeviceKind
from farebox.protocol.keys import SigningKey
from farebox.server.ledger.store import Session, Store, open_store
from farebox.server.sync import devices
from farebox.server.sync.devices import Nonce
from farebox.server.sync.errors import AuthenticationError

WINDOW_MS = 300_000
NOW_MS = 1_800_000_000_000


async def enrolled(store: Store, name: str) -> None:
    token = await store.run(devices.create_token, name, DeviceKind.BUS, NOW_MS, WINDOW_MS)
    await store.run(devices.enroll, token, SigningKey.generate().verify_key, NOW_MS)


async def admit(session: Session, device: str, nonce: bytes, now_ms: int) -> None:
    await devices.admit(session, device, Nonce(nonce, WINDOW_MS), now_ms)


async def test_a_nonce_is_refused_within_its_window_and_forgotten_after(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.migrate()
        await enrolled(store, "bus-1")
        await store.run(admit, "bus-1", b"n" * 16, NOW_MS)
        with pytest.raises(AuthenticationError, match="seen before"):
            await store.run(admit, "bus-1", b"n" * 16, NOW_MS + WINDOW_MS)
        await store.run(admit, "bus-1", b"m" * 16, NOW_MS + 2 * WINDOW_MS + 1)

        async def kept(session: Session) -> list[bytes]:
            rows = await session.fetch("SELECT nonce FROM request_nonces ORDER BY nonce")
            return [bytes(nonce) for (nonce,) in rows]

        assert await store.run(kept) == [b"m" * 16]  # the old one is gone
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_device_forgetting_its_old_nonces_waits_for_no_other(postgres_dsn: str) -> None:
    """PostgreSQL: a transaction that deletes rows holds them until it commits. A batch's
    transaction admits its device first and runs on; a device of its own deletes only its
    own old nonces, so another device's transaction does not wait for it."""
    store = await open_store(postgres_dsn)
    try:
        await store.migrate()
        for name in ("bus-1", "bus-2"):
            await enrolled(store, name)
            await store.run(admit, name, b"old" * 4, NOW_MS)
        later = NOW_MS + 2 * WINDOW_MS + 1
        holding, release = asyncio.Event(), asyncio.Event()

        async def long_batch(session: Session) -> None:
            await admit(session, "bus-1", b"new" * 4, later)
            holding.set()
            await release.wait()  # the rest of a batch's transaction

        first = asyncio.create_task(store.run(long_batch))
        await holding.wait()
        try:
            await asyncio.wait_for(store.run(admit, "bus-2", b"new" * 4, later), timeout=5)
        finally:
            release.set()
            await first
    finally:
        await store.close()


@pytest.mark.postgres
async def test_one_nonce_in_two_requests_at_once_is_a_replay_not_a_clash(postgres_dsn: str) -> None:
    """PostgreSQL: the same signed request sent to two server processes at once. The
    second waits for the first's nonce, and is refused as a replay once it commits."""
    store = await open_store(postgres_dsn)
    try:
        await store.migrate()
        await enrolled(store, "bus-1")
        holding, release = asyncio.Event(), asyncio.Event()

        async def first_request(session: Session) -> None:
            await admit(session, "bus-1", b"same" * 4, NOW_MS)
            holding.set()
            await release.wait()

        first = asyncio.create_task(store.run(first_request))
        await holding.wait()
        second = asyncio.create_task(store.run(admit, "bus-1", b"same" * 4, NOW_MS))
        await asyncio.sleep(0.3)
        assert not second.done()  # it waits for the first request's nonce
        release.set()
        await first
        with pytest.raises(AuthenticationError, match="seen before"):
            await second
    finally:
        await store.close()
