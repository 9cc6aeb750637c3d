"""A device far behind the stoplist's head gets the whole list without its history read.

Each version is one change, so a delta holds at most as many tokens as versions it spans:
from as many versions as the list holds tokens, the whole list is the smaller package.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import cast

from farebox.protocol.packages import Package
from farebox.protocol.stoplist import decode_stoplist_change
from farebox.server.ledger import reads, writes
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.stoplist import BlockChange, BlockReason
from farebox.server.ledger.store import Row, Session
from farebox.server.sync.publishing import Snapshots, stoplist_package

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


async def poll(ledger: Ledger, have: int) -> tuple[Package | None, int]:
    """The package a device holding version `have` gets, and the change rows read for it."""

    async def work(session: Session) -> tuple[Package | None, int]:
        counting = Counting(session)
        package = await stoplist_package(cast(Session, counting), have, 0, Snapshots())
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
