"""Feedback to the rider: green or red, a beep pattern, the gate relay, a display line.

The runtime turns each recorded decision into an `Indication` (a value) and hands it to
a `Feedback` implementation: the console one for development and tests, the GPIO one
for a validator's LEDs, buzzer and gate relay. Feedback is given only after the tap's
record is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from farebox.protocol.records import Outcome, Reason, Tap


class Beep(StrEnum):
    """Beep patterns: one short for yes, three short for no, one long for out of service."""

    ACCEPT = "accept"
    DENY = "deny"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class Indication:
    """What the rider sees and hears for one tap, or for a change of service state."""

    accepted: bool
    reason: Reason
    display: str
    beep: Beep
    open_gate: bool = False
    seq: int | None = None
    token: str | None = None


_DENIALS = {
    Reason.STOPLISTED: "CARD BLOCKED",
    Reason.INSUFFICIENT_PRODUCT: "NO RIDES LEFT",
    Reason.EXPIRED: "TICKET EXPIRED",
    Reason.ALREADY_USED: "TICKET ALREADY USED",
    Reason.PASSBACK: "ALREADY ENTERED",
    Reason.UNKNOWN_MEDIA: "UNKNOWN CARD",
    Reason.BAD_SIGNATURE: "INVALID TICKET",
    Reason.NOT_YET_VALID: "TICKET NOT YET VALID",
    Reason.CLOCK_UNSET: "CLOCK NOT SET",
    Reason.OUT_OF_SERVICE: "OUT OF SERVICE",
    Reason.CARD_CLASH: "ONE CARD ONLY",
    Reason.STALE_STOPLIST: "CARD NOT ACCEPTED",
    Reason.NO_TARIFF: "NO FARE HERE",
}


def for_tap(tap: Tap, seq: int, *, gate: bool) -> Indication:
    """The indication of a recorded tap; a gate opens only on an accepted one."""
    if tap.outcome is Outcome.ACCEPT:
        fare = tap.fare
        text = "OK" if fare is None else f"OK {fare}"
        return Indication(
            accepted=True,
            reason=tap.reason,
            display=text,
            beep=Beep.ACCEPT,
            open_gate=gate,
            seq=seq,
            token=tap.token,
        )
    return Indication(
        accepted=False,
        reason=tap.reason,
        display=_DENIALS[tap.reason],
        beep=Beep.DENY,
        seq=seq,
        token=tap.token,
    )


OUT_OF_SERVICE = Indication(
    accepted=False, reason=Reason.OUT_OF_SERVICE, display="OUT OF SERVICE", beep=Beep.FAULT
)
IN_SERVICE = Indication(accepted=True, reason=Reason.OK, display="READY", beep=Beep.ACCEPT)


class Feedback(Protocol):
    """Where indications go; `show` must return quickly (patterns run in the background)."""

    def show(self, indication: Indication) -> None: ...

    def close(self) -> None: ...


class NoFeedback:
    """For a headless agent (a test rig, a turnstile whose controller reads the journal)."""

    def show(self, indication: Indication) -> None:
        del indication

    def close(self) -> None:
        return None
