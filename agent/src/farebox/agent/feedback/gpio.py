"""GPIO feedback through gpiozero: green and red LEDs, a buzzer, and a gate relay.

gpiozero runs blink and beep patterns on its own background threads, so `show` returns
at once. The pin factory is always passed in explicitly (a real one on a validator,
gpiozero's MockFactory in tests), never picked up from gpiozero's global default.
"""

from __future__ import annotations

from typing import Any

from gpiozero import LED, Buzzer, DigitalOutputDevice

from farebox.agent.config import FeedbackConfig
from farebox.agent.feedback import Beep, Feedback, Indication

LIGHT_S = 1.0
SHORT_S = 0.08
LONG_S = 0.8


class GpioFeedback:
    def __init__(
        self, config: FeedbackConfig, pin_factory: Any, display: Feedback | None = None
    ) -> None:
        if config.green_pin is None or config.red_pin is None:
            raise ValueError("GPIO feedback needs a green and a red pin")
        self._green = LED(config.green_pin, pin_factory=pin_factory)
        self._red = LED(config.red_pin, pin_factory=pin_factory)
        self._buzzer = (
            None
            if config.buzzer_pin is None
            else Buzzer(config.buzzer_pin, pin_factory=pin_factory)
        )
        self._relay = (
            None
            if config.relay_pin is None
            else DigitalOutputDevice(config.relay_pin, pin_factory=pin_factory)
        )
        self._pulse_s = config.relay_pulse_ms / 1000
        self._display = display

    def show(self, indication: Indication) -> None:
        if indication.beep is Beep.FAULT:
            # Out of service: red stays on until service is back.
            self._green.off()
            self._red.on()
        elif indication.seq is None:
            self._green.off()
            self._red.off()
        elif indication.accepted:
            self._red.off()
            self._green.blink(on_time=LIGHT_S, off_time=0, n=1, background=True)
        else:
            self._green.off()
            self._red.blink(on_time=LIGHT_S, off_time=0, n=1, background=True)
        if self._buzzer is not None:
            self._beep(self._buzzer, indication.beep)
        if indication.open_gate and self._relay is not None:
            self._relay.blink(on_time=self._pulse_s, off_time=0, n=1, background=True)
        if self._display is not None:
            self._display.show(indication)

    @staticmethod
    def _beep(buzzer: Buzzer, beep: Beep) -> None:
        if beep is Beep.ACCEPT:
            buzzer.beep(on_time=SHORT_S, off_time=SHORT_S, n=1, background=True)
        elif beep is Beep.DENY:
            buzzer.beep(on_time=SHORT_S, off_time=SHORT_S, n=3, background=True)
        else:
            buzzer.beep(on_time=LONG_S, off_time=SHORT_S, n=1, background=True)

    def close(self) -> None:
        for device in (self._green, self._red, self._buzzer, self._relay):
            if device is not None:
                device.close()
        if self._display is not None:
            self._display.close()
