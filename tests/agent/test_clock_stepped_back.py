"""Taps stamped by a clock that ran fast and was then stepped back: anti-passback and the
re-tap window ignore a past tap stamped later than the tap being decided."""

from __future__ import annotations

from pathlib import Path

from farebox.agent.decision import LocalHistory, Now, decide
from farebox.agent.policy import HOUR_MS, MINUTE_MS, DeviceType, Policy
from farebox.agent.store.history import PastTap
from farebox.protocol.records import ClockState, Location, Outcome, Reason, TapType
from tests.agent.builders import MORNING_MS, caches, card, install_packages
from tests.agent.harness import agent_config, start_agent, until

GATE = Policy.for_device(DeviceType.TURNSTILE)  # 10 minutes of anti-passback
STATION = Location(route="M1", stop="almaly")


def entry(at_ms: int, location: Location = STATION) -> PastTap:
    return PastTap(1, at_ms, TapType.ON, Outcome.ACCEPT, Reason.OK, None, None, None, location)


def gate_tap(history: tuple[PastTap, ...], at_ms: int) -> Reason:
    now = Now(at_ms, ClockState.SYNCED)
    return decide(card(at_ms=at_ms), caches(), LocalHistory(history), now, STATION, GATE).reason


def test_an_entry_stamped_by_a_fast_clock_does_not_hold_the_rider_back() -> None:
    fast = entry(MORNING_MS + 2 * HOUR_MS)  # the clock ran 2 h fast, then NTP stepped it back
    for minutes in (1, 15, 60, 119):
        assert gate_tap((fast,), MORNING_MS + minutes * MINUTE_MS) is Reason.OK


def test_an_entry_after_the_step_back_still_guards_the_gate() -> None:
    fast, honest = entry(MORNING_MS + 2 * HOUR_MS), entry(MORNING_MS)
    assert gate_tap((fast, honest), MORNING_MS + 5 * MINUTE_MS) is Reason.PASSBACK
    assert gate_tap((honest, fast), MORNING_MS + 5 * MINUTE_MS) is Reason.PASSBACK
    assert gate_tap((fast, honest), MORNING_MS + 10 * MINUTE_MS) is Reason.OK


def test_an_entry_at_the_same_instant_is_passback() -> None:
    assert gate_tap((entry(MORNING_MS),), MORNING_MS) is Reason.PASSBACK


async def test_a_turnstile_lets_the_rider_in_after_its_clock_was_stepped_back(
    tmp_path: Path,
) -> None:
    config = agent_config(
        tmp_path,
        device={"type": "turnstile"},
        location={"route": "12", "vehicle": "gate-1", "stop": "abay-ave"},
    )
    install_packages(config.state.database, "bus-017")
    agent = await start_agent(config)
    uid = b"\x04\x0a\x0b\x0c"
    agent.reader.feed([card(uid, at_ms=MORNING_MS + 2 * HOUR_MS)])  # the clock 2 h fast
    await until(lambda: agent.runtime.taps_handled == 1)
    agent.reader.feed([card(uid, at_ms=MORNING_MS + 30 * MINUTE_MS)])  # after the step back
    await until(lambda: agent.runtime.taps_handled == 2)
    await agent.shutdown()
    first, second = agent.feedback.taps
    assert (first.reason, first.open_gate) == (Reason.OK, True)
    assert (second.reason, second.open_gate) == (Reason.OK, True)
