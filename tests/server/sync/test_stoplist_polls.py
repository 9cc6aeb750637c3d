"""A device far behind the stoplist's head gets the whole list without its history read;
a device ahead of it (the store restored from a backup) gets it renumbered past its own.

Each version is one change, so a delta holds at most as many tokens as versions it spans:
from as many versions as the list holds tokens, the whole list is the smaller package.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import cast

import pytest

from farebox.protocol.enrollment import DeviceKind
from farebox.protocol.keys import SigningKey
from farebox.protocol.packages import Package
from farebox.protocol.stoplist import StoplistChecksum, decode_stoplist_change
from farebox.server.ledger import reads, writes
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.stoplist import BlockChange, BlockReason
from farebox.server.ledger.store import Row, Session
from farebox.server.sync import devices
from farebox.server.sync.errors import StoplistAheadError
from farebox.server.sync.publishing import Snapshots, stoplist_package

HOUR_MS = 3_600_000
LISTED = [f"nfc:{n:04d}" for n in range(10)]
CHURN = [f"nfc:{n:04d}" for n in range(10, 510)]
"""Cards lost and found again: two versions each, and nothing on the list at the end."""


class Counting:
    """A session that counts the rows of stoplist changes its statements return."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.changes_read = 0

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        rows = await self.session.fetch(sql, *args)
        if "FROM stoplist_changes" in sql:
            self.changes_read += len(rows)
        return rows

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)


async def poll(
    ledger: Ledger,
    have: int,
    device: str = "bus-1",
    checksum: bytes | None = None,
    now_ms: int = 0,
) -> tuple[Package | None, int]:
    """The package a device holding version `have` (with `checksum`, if given) gets at
    `now_ms`, and the change rows read for it."""

    async def work(session: Session) -> tuple[Package | None, int]:
        counting = Counting(session)
        package = await stoplist_package(
            cast(Session, counting), device, have, checksum, now_ms, Snapshots()
        )
        return package, counting.changes_read

    return await ledger.store.run(work)


async def a_list_of_ten_after_a_thousand_versions(ledger: Ledger) -> int:
    changes = [BlockChange(token, BlockReason.LOST, add=True) for token in LISTED]
    for token in CHURN:
        changes.append(BlockChange(token, BlockReason.LOST, add=True))
        changes.append(BlockChange(token, BlockReason.LOST, add=False))
    await ledger.store.run(writes.change_blocks, changes, 0)
    head = await ledger.stoplist_head()
    assert (head.version, await ledger.stoplist_size()) == (1010, 10)
    return head.version


async def test_a_device_far_behind_gets_the_whole_list_and_no_change_is_read(
    ledger: Ledger,
) -> None:
    head = await a_list_of_ten_after_a_thousand_versions(ledger)
    for have in (1, head - 10):
        package, read = await poll(ledger, have)
        assert package is not None
        assert not package.is_delta
        assert read == 0
        assert decode_stoplist_change(package.payload).added == frozenset(LISTED)


async def test_a_device_fewer_versions_behind_than_the_list_gets_a_delta_read_within_them(
    ledger: Ledger,
) -> None:
    head = await a_list_of_ten_after_a_thousand_versions(ledger)
    package, read = await poll(ledger, head - 9)
    assert package is not None
    assert package.is_delta
    assert read == 9
    change = decode_stoplist_change(package.payload)
    delta = await ledger.store.run(reads.stoplist_delta, head - 9)
    assert (change.added, change.removed) == (frozenset(delta.added), frozenset(delta.removed))
    assert await poll(ledger, head) == (None, 0)


async def is_the_whole_list(
    ledger: Ledger, package: Package | None, version: int, tokens: Iterable[str]
) -> None:
    """`package` is the whole list of `tokens` at `version`, and the books still hold."""
    assert package is not None
    assert (package.version, package.is_delta) == (version, False)
    assert decode_stoplist_change(package.payload).added == frozenset(tokens)
    assert await ledger.violations() == []


async def enrolled(ledger: Ledger, *names: str) -> None:
    for name in names:
        token = await ledger.store.run(devices.create_token, name, DeviceKind.BUS, 0, 10**9)
        await ledger.store.run(devices.enroll, token, SigningKey.generate().verify_key, 0)


async def test_a_device_ahead_of_a_restored_store_gets_the_list_renumbered_past_its_own(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    head = await a_list_of_ten_after_a_thousand_versions(ledger)
    await enrolled(ledger, "bus-1", "bus-2")
    lost = head + 50  # the store was restored from a backup taken 50 versions ago
    with caplog.at_level(logging.WARNING, "farebox.server.sync.publishing"):
        package, _ = await poll(ledger, lost)
    await is_the_whole_list(ledger, package, lost + writes.RENUMBER_STEP, LISTED)
    assert f"device bus-1 holds a stoplist version {lost} this store did not publish" in caplog.text
    # Any other version, lost or kept, is now behind the head: no second renumbering.
    for have in (head + 20, head - 9):
        package, _ = await poll(ledger, have, "bus-2")
        assert package is not None
        assert package.version == lost + writes.RENUMBER_STEP
    renumbered = await ledger.store.run(
        lambda session: session.fetch("SELECT previous, device, held FROM stoplist_renumberings")
    )
    assert [tuple(row) for row in renumbered] == [(head, "bus-1", lost)]
    # The next change is the next version, a delta from the renumbered head.
    await ledger.store.run(
        writes.change_blocks, [BlockChange("nfc:0999", BlockReason.STOLEN, add=True)], 0
    )
    package, _ = await poll(ledger, lost + writes.RENUMBER_STEP)
    assert package is not None
    assert (package.base_version, package.version) == (
        lost + writes.RENUMBER_STEP,
        lost + writes.RENUMBER_STEP + 1,
    )
    assert decode_stoplist_change(package.payload).added == {"nfc:0999"}
    skipped = await ledger.store.run(reads.stoplist_delta, head, head + 100)
    assert (skipped.added, skipped.removed) == ((), ())
    assert await ledger.violations() == []


async def test_a_version_too_far_ahead_is_refused_and_renumbering_waits_an_hour(
    ledger: Ledger,
) -> None:
    head = await a_list_of_ten_after_a_thousand_versions(ledger)
    await enrolled(ledger, "bus-1", "bus-2")
    with pytest.raises(StoplistAheadError, match="never 2\\*\\*40 or more past its own"):
        await poll(ledger, head + writes.RENUMBER_REACH)
    assert (await ledger.stoplist_head()).version == head
    package, _ = await poll(ledger, head + 1, now_ms=HOUR_MS)
    assert package is not None
    renumbered = head + 1 + writes.RENUMBER_STEP
    # Another claim within the hour (a stolen key, or a second restore) waits for it.
    for claim in (renumbered + 5, renumbered):
        with pytest.raises(StoplistAheadError, match="at most once an hour"):
            await poll(ledger, claim, "bus-2", checksum=bytes(32), now_ms=2 * HOUR_MS - 1)
    assert (await ledger.stoplist_head()).version == renumbered
    package, _ = await poll(ledger, renumbered + 5, "bus-2", now_ms=2 * HOUR_MS)
    assert package is not None
    assert package.version == renumbered + 5 + writes.RENUMBER_STEP
    assert await ledger.violations() == []


async def test_a_store_with_no_list_yet_renumbers_its_empty_list_past_a_device_s(
    ledger: Ledger,
) -> None:
    await enrolled(ledger, "bus-1")  # a store restored from a backup older than any block
    package, _ = await poll(ledger, 8)
    await is_the_whole_list(ledger, package, 8 + writes.RENUMBER_STEP, ())


async def test_the_same_version_of_another_list_is_renumbered_and_sent_whole(
    ledger: Ledger,
) -> None:
    head = await a_list_of_ten_after_a_thousand_versions(ledger)
    await enrolled(ledger, "bus-1")
    ours = (await ledger.stoplist_head()).checksum
    assert await poll(ledger, head, checksum=ours) == (None, 0)
    # The store restored from a backup numbered on to the device's version, another list.
    other = StoplistChecksum.of(["nfc:9999"]).digest()
    package, _ = await poll(ledger, head, checksum=other)
    await is_the_whole_list(ledger, package, head + writes.RENUMBER_STEP, LISTED)


async def test_an_older_version_of_another_list_gets_the_whole_list_not_a_delta(
    ledger: Ledger,
) -> None:
    head = await a_list_of_ten_after_a_thousand_versions(ledger)
    await enrolled(ledger, "bus-1")
    then = await ledger.store.run(reads.stoplist_head_at, head - 9)
    package, _ = await poll(ledger, head - 9, checksum=then.checksum)
    assert package is not None
    assert package.is_delta
    other = StoplistChecksum.of(["nfc:9999"]).digest()
    package, read = await poll(ledger, head - 9, checksum=other)
    assert package is not None
    assert (package.version, package.is_delta) == (head, False)  # not renumbered
    assert read == 1  # the checksum at its version, and no history
