"""A Hypothesis state machine over the ledger: any sequence of top-ups, taps, late taps,
re-sent batches, settlements, reversals and blocks keeps every invariant, on SQLite and on
PostgreSQL.

Beside the store, the machine keeps a model of the money: what each rider paid in, and
what each of their fare days costs (the rated cost once settled, plus the provisional
fares and minus the reversals since). After every step the books must match the model,
and the ledger's own `violations()` must be empty.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from farebox.protocol.stoplist import StoplistChecksum
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.posting import FareTap, TopUp
from farebox.server.ledger.settlement import DayTap, FlatFareRater
from farebox.server.ledger.stoplist import BlockReason
from farebox.server.ledger.store import Store, open_store
from tests.server.conftest import ALMATY, Clock
from tests.server.helpers import at, kzt, tap, top_up
from tests.support.postgres import Cluster

T = TypeVar("T")
TOKENS = ("nfc:a1", "nfc:a2", "nfc:a3")
DEVICES = ("bus-1", "bus-2")
RATER = FlatFareRater(kzt(200), transfer_window_ms=40 * 60_000, daily_cap=kzt(500))
HOUR_MS = 3_600_000

Databases = tuple[
    Callable[[], Coroutine[Any, Any, str]], Callable[[str], Coroutine[Any, Any, None]]
]


@dataclass
class Day:
    """One rider's fare day in the model: its taps and what it costs the rider so far."""

    taps: list[FareTap] = field(default_factory=list)
    cost: int = 0
    dirty: bool = False

    def rated(self) -> int:
        ordered = sorted(self.taps, key=lambda t: (t.time_ms, t.key))
        day_taps = [DayTap(t.key, t.time_ms, "", t.route, t.fare) for t in ordered]
        return sum(amount.minor for amount in RATER("", date.min, day_taps))


class LedgerMachine(RuleBasedStateMachine):
    databases: ClassVar[Databases]
    """How to make and drop an empty store: each example starts from empty books."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.url = self.run(self.databases[0]())
        self.store: Store = self.run(open_store(self.url))
        self.run(self.store.migrate())
        self.clock = Clock.at_ms(at(2, "06:00"))
        self.ledger = Ledger(self.store, ALMATY, clock=self.clock)
        self.paid_in = dict.fromkeys(TOKENS, 0)
        self.days: dict[tuple[str, date], Day] = {}
        self.seqs = dict.fromkeys(DEVICES, 0)
        self.batches: list[list[FareTap]] = []
        self.top_ups: list[TopUp] = []
        self.payments = itertools.count(1)
        self.blocked: dict[str, set[BlockReason]] = {token: set() for token in TOKENS}

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
            self.run(self.databases[1](self.url))
        finally:
            self.loop.close()

    @rule(token=st.sampled_from(TOKENS), tenge=st.integers(1, 800))
    def top_up(self, token: str, tenge: int) -> None:
        request = top_up(token, tenge, f"pay-{next(self.payments)}", self.clock.now_ms)
        assert self.run(self.ledger.top_up(request)).fresh
        self.top_ups.append(request)
        self.paid_in[token] += tenge * 100

    @precondition(lambda self: self.top_ups)
    @rule(data=st.data())
    def top_up_again(self, data: st.DataObject) -> None:
        assert not self.run(self.ledger.top_up(data.draw(st.sampled_from(self.top_ups)))).fresh

    @rule(
        rides=st.lists(
            st.tuples(
                st.sampled_from(DEVICES),
                st.sampled_from(TOKENS),
                st.sampled_from([0, 150, 200, 300]),
                st.sampled_from(["12", "32"]),
                st.integers(0, 50 * 60),  # minutes late: a bus may sync days later
            ),
            min_size=1,
            max_size=6,
        )
    )
    def taps(self, rides: list[tuple[str, str, int, str, int]]) -> None:
        batch = []
        for device, token, fare, route, late in rides:
            self.seqs[device] += 1
            when = self.clock.now_ms - late * 60_000
            batch.append(tap(device, self.seqs[device], token, when, fare, route))
        assert self.run(self.ledger.post_taps(batch)).fresh == len(batch)
        self.batches.append(batch)
        for ride in batch:
            day = self.days.setdefault((ride.token, ALMATY.day_of(ride.time_ms)), Day())
            day.taps.append(ride)
            day.cost += ride.fare.minor
            day.dirty = True

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def batch_again(self, data: st.DataObject) -> None:
        batch = data.draw(st.sampled_from(self.batches))
        assert self.run(self.ledger.post_taps(batch)).repeated == len(batch)

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours: int) -> None:
        self.clock.now_ms += hours * HOUR_MS

    @rule()
    def settle(self) -> None:
        self.run(self.ledger.settle_due(RATER))
        closed = ALMATY.last_closed(self.clock.now_ms)
        for (_, day), model in self.days.items():
            if day <= closed and model.dirty:
                model.cost = model.rated()
                model.dirty = False

    @precondition(lambda self: any(t.fare.minor for d in self.days.values() for t in d.taps))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        paid = [(d, t) for d in self.days.values() for t in d.taps if t.fare.minor]
        day, ride = data.draw(st.sampled_from(paid))
        self.run(self.ledger.reverse(ride.key, f"reverse:{ride.key}", "operator"))
        day.taps.remove(ride)
        day.cost -= ride.fare.minor
        day.dirty = True

    @rule(
        token=st.sampled_from(TOKENS), reason=st.sampled_from([BlockReason.LOST, BlockReason.FRAUD])
    )
    def block(self, token: str, reason: BlockReason) -> None:
        self.run(self.ledger.block(token, reason))
        self.blocked[token].add(reason)

    @rule(
        token=st.sampled_from(TOKENS), reason=st.sampled_from([BlockReason.LOST, BlockReason.FRAUD])
    )
    def unblock(self, token: str, reason: BlockReason) -> None:
        self.run(self.ledger.unblock(token, reason))
        self.blocked[token].discard(reason)

    def balance(self, token: str) -> int:
        cost = sum(day.cost for (owner, _), day in self.days.items() if owner == token)
        return self.paid_in[token] - cost

    @invariant()
    def books_match_the_model(self) -> None:
        assert self.run(self.ledger.violations()) == []
        for token in TOKENS:
            state = self.run(self.ledger.account(f"rider:{token}"))
            assert (state.posted if state else 0) == self.balance(token), token

    @invariant()
    def stoplist_follows_balances_and_blocks(self) -> None:
        expected = sorted(t for t in TOKENS if self.balance(t) < 0 or self.blocked[t])
        assert self.run(self.ledger.stoplist_tokens()) == expected
        delta = self.run(self.ledger.stoplist_delta(0))
        assert list(delta.added) == expected
        assert delta.checksum == StoplistChecksum.of(expected).digest()


def sqlite_databases(folder: Path) -> Databases:
    async def make() -> str:
        return f"sqlite:///{folder / uuid.uuid4().hex}.db"

    async def drop(url: str) -> None:
        await asyncio.to_thread(Path(url.removeprefix("sqlite:///")).unlink)

    return make, drop


def postgres_databases(cluster: Cluster) -> Databases:
    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(cluster.dsn())
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def make() -> str:
        name = f"m_{uuid.uuid4().hex[:16]}"
        await admin(f'CREATE DATABASE "{name}"')
        return cluster.dsn(name)

    async def drop(url: str) -> None:
        await admin(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    return make, drop


@pytest.mark.parametrize(
    ("backend", "examples"),
    [("sqlite", 40), pytest.param("postgres", 15, marks=pytest.mark.postgres)],
)
def test_any_history_keeps_the_books_sound(
    backend: str, examples: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        databases = sqlite_databases(tmp_path)
    else:
        databases = postgres_databases(request.getfixturevalue("postgres_cluster"))
    machine = type(f"{backend.title()}LedgerMachine", (LedgerMachine,), {"databases": databases})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
