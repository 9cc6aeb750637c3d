"""Feedback: the indications of taps, the console lines, and GPIO through gpiozero.

There are no GPIO pins on a development machine or in CI, so the GPIO tests drive
gpiozero's own MockFactory: the one mock in the agent's tests, standing in for the pins
only; LEDs, buzzer and relay are gpiozero's real device classes.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from farebox.agent.config import FeedbackConfig, FeedbackKind
from farebox.agent.feedback import IN_SERVICE, OUT_OF_SERVICE, Beep, for_tap
from farebox.agent.feedback.console import ConsoleFeedback
from farebox.agent.feedback.gpio import LIGHT_S, GpioFeedback
from farebox.protocol.records import Reason
from tests.support.records import accepted_tap, denied_tap

GREEN, RED, BUZZER, RELAY = 17, 27, 22, 23
PULSE_MS = 120


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def gpio(pins: MockFactory) -> Iterator[GpioFeedback]:
    config = FeedbackConfig(
        kind=FeedbackKind.GPIO,
        green_pin=GREEN,
        red_pin=RED,
        buzzer_pin=BUZZER,
        relay_pin=RELAY,
        relay_pulse_ms=PULSE_MS,
    )
    feedback = GpioFeedback(config, pins)
    yield feedback
    feedback.close()


def wait_for(condition: Callable[[], object], seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("pin never reached the expected state")


def test_indications() -> None:
    yes = for_tap(accepted_tap(), 7, gate=True)
    assert (yes.accepted, yes.display, yes.beep, yes.open_gate, yes.seq) == (
        True,
        "OK 200.00 KZT",
        Beep.ACCEPT,
        True,
        7,
    )
    no = for_tap(denied_tap(), 8, gate=True)
    assert (no.accepted, no.display, no.beep, no.open_gate) == (
        False,
        "CARD BLOCKED",
        Beep.DENY,
        False,
    )
    for reason in Reason:
        if reason is not Reason.OK:
            assert for_tap(denied_tap(reason=reason), 1, gate=False).display


def test_console_lines() -> None:
    stream = io.StringIO()
    console = ConsoleFeedback(stream)
    console.show(for_tap(accepted_tap("nfc:04a1"), 12, gate=True))
    console.show(OUT_OF_SERVICE)
    assert stream.getvalue().splitlines() == [
        "ACCEPT reason=ok seq=12 token=nfc:04a1 gate=open | OK 200.00 KZT",
        "SERVICE reason=out_of_service | OUT OF SERVICE",
    ]


def test_accept_lights_green_beeps_once_and_pulses_the_gate(
    pins: MockFactory, gpio: GpioFeedback
) -> None:
    gpio.show(for_tap(accepted_tap(), 3, gate=True))
    green, red, relay, buzzer = (pins.pin(n) for n in (GREEN, RED, RELAY, BUZZER))
    wait_for(lambda: green.state)
    assert not red.state
    wait_for(lambda: not relay.state and len(relay.states) >= 3)
    relay.assert_states_and_times([(0.0, False), (0.0, True), (PULSE_MS / 1000, False)])
    wait_for(lambda: len(buzzer.states) >= 3)
    buzzer.assert_states([False, True, False])
    wait_for(lambda: not green.state, LIGHT_S + 1)


def test_deny_lights_red_beeps_three_times_and_keeps_the_gate_shut(
    pins: MockFactory, gpio: GpioFeedback
) -> None:
    gpio.show(for_tap(denied_tap(), 4, gate=True))
    red, relay, buzzer = (pins.pin(n) for n in (RED, RELAY, BUZZER))
    wait_for(lambda: red.state)
    wait_for(lambda: len(buzzer.states) >= 7)
    buzzer.assert_states([False, True, False, True, False, True, False])
    assert [s.state for s in relay.states] == [False]


def test_out_of_service_holds_red_until_service_is_back(
    pins: MockFactory, gpio: GpioFeedback
) -> None:
    gpio.show(OUT_OF_SERVICE)
    red, green = pins.pin(RED), pins.pin(GREEN)
    time.sleep(LIGHT_S + 0.2)
    assert red.state
    assert not green.state
    gpio.show(IN_SERVICE)
    assert not red.state
