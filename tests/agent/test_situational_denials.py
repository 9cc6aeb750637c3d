"""Denials for the moment, not for the media, are not repeated as re-taps: the rider who
takes the second card away, or taps again once the route is set, is decided afresh."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from farebox.agent.decision import RETAP, SITUATIONAL, LocalHistory, Now, decide
from farebox.agent.policy import Policy, StalePolicy
from farebox.agent.presentation import Presentation
from farebox.agent.runtime import LocationChange
from farebox.agent.store.caches import Caches
from farebox.protocol.record_values import EARLIEST_PLAUSIBLE_MS
from farebox.protocol.records import ClockState, Location, Reason
from tests.agent.builders import MORNING_MS, caches, card, install_packages
from tests.agent.harness import agent_config, start_agent, until
from tests.support.journal import journal_taps

BUS = Location(route="12", vehicle="bus-017", stop="abay-ave")
SYNCED = Now(MORNING_MS, ClockState.SYNCED)

SITUATIONS: dict[Reason, tuple[Presentation, Caches, Now, Location, Policy]] = {
    Reason.OUT_OF_SERVICE: (card(), caches(config={"in_service": False}), SYNCED, BUS, Policy()),
    Reason.CARD_CLASH: (card(clash=True), caches(), SYNCED, BUS, Policy()),
    Reason.CLOCK_UNSET: (
        card(at_ms=EARLIEST_PLAUSIBLE_MS - 1),
        caches(),
        Now(EARLIEST_PLAUSIBLE_MS - 1, ClockState.UNSET),
        BUS,
        Policy(),
    ),
    Reason.STALE_STOPLIST: (
        card(),
        caches(stoplist_at_ms=None),
        SYNCED,
        BUS,
        Policy(stale=StalePolicy.DENY_UNKNOWN),
    ),
    Reason.NO_TARIFF: (card(), caches(), SYNCED, replace(BUS, route=None), Policy()),
}


def test_every_situational_reason_has_its_situation() -> None:
    assert set(SITUATIONS) == SITUATIONAL


@pytest.mark.parametrize("reason", sorted(SITUATIONS))
def test_a_situational_denial_is_not_remembered(reason: Reason) -> None:
    presentation, held, now, location, policy = SITUATIONS[reason]
    decision = decide(presentation, held, LocalHistory(), now, location, policy)
    assert (decision.reason, decision.remember) == (reason, False)


def test_a_denial_for_the_media_is_remembered() -> None:
    held = caches(stoplisted=frozenset({"nfc:04a1b2c3"}))
    decision = decide(card(), held, LocalHistory(), SYNCED, BUS, Policy())
    assert (decision.reason, decision.remember) == (Reason.STOPLISTED, True)


async def test_the_card_left_alone_after_a_clash_is_charged_not_refused_again(
    tmp_path: Path,
) -> None:
    config = agent_config(tmp_path)
    install_packages(config.state.database, "bus-017")
    agent = await start_agent(config)
    agent.reader.feed([card(clash=True), card(at_ms=MORNING_MS + 5_000)])
    await until(lambda: agent.runtime.taps_handled == 2)
    await agent.shutdown()
    clash, alone = agent.feedback.taps
    assert (clash.accepted, clash.reason) == (False, Reason.CARD_CLASH)
    assert (alone.accepted, alone.display) == (True, "OK 200.00 KZT")
    assert [RETAP in tap.flags for tap in journal_taps(config.state.database)] == [False, False]


async def test_a_tap_refused_before_the_route_was_set_is_decided_again_after(
    tmp_path: Path,
) -> None:
    config = agent_config(tmp_path, location={"route": "999"})  # a route the tariff lacks
    install_packages(config.state.database, "bus-017")
    agent = await start_agent(config)
    agent.reader.feed([card()])
    await until(lambda: agent.runtime.taps_handled == 1)
    agent.runtime.submit(LocationChange(BUS))
    agent.reader.feed([card(at_ms=MORNING_MS + 20_000)])
    await until(lambda: agent.runtime.taps_handled == 2)
    await agent.shutdown()
    before, after = agent.feedback.taps
    assert before.reason is Reason.NO_TARIFF
    assert (after.accepted, after.display) == (True, "OK 200.00 KZT")
    assert RETAP not in journal_taps(config.state.database)[-1].flags
