"""Policies: how a validator of a given type behaves at the edges, as immutable values.

A bus validator and a metro turnstile differ mainly in anti-passback: on a bus the second
tap of a card inside the re-tap window just repeats the first answer, while a turnstile
must not let a card that has just entered open the gate again for someone else. The clock
and stale-stoplist policies say what to do when the validator cannot trust its own
clock or its stoplist; both are operator choices, and the journal records either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from farebox.agent.errors import ConfigError
from farebox.protocol.record_values import EARLIEST_PLAUSIBLE_MS
from farebox.protocol.records import ClockState, MediaKind, TapType

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


class DeviceType(StrEnum):
    BUS = "bus"
    TURNSTILE = "turnstile"


class ClockPolicy(StrEnum):
    """With the clock unset or drifting: deny every tap, or accept and flag the record."""

    DENY = "deny"
    ACCEPT_FLAGGED = "accept_flagged"


class StalePolicy(StrEnum):
    """With the stoplist too old: accept and flag, or deny tokens this validator never accepted."""

    ACCEPT_FLAGGED = "accept_flagged"
    DENY_UNKNOWN = "deny_unknown"


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything `decide` needs to know about how this validator is configured."""

    device_type: DeviceType = DeviceType.BUS
    tap_type: TapType = TapType.SINGLE
    retap_window_ms: int = MINUTE_MS
    passback_ms: int = 0
    clock: ClockPolicy = ClockPolicy.DENY
    max_drift_ms: int = 5 * MINUTE_MS
    stoplist_max_age_ms: int = 24 * HOUR_MS
    stale: StalePolicy = StalePolicy.ACCEPT_FLAGGED
    fare_media: tuple[tuple[MediaKind, str], ...] = field(default=())

    def __post_init__(self) -> None:
        problems = [
            f"{name} must not be negative"
            for name in ("retap_window_ms", "passback_ms", "max_drift_ms", "stoplist_max_age_ms")
            if getattr(self, name) < 0
        ]
        if problems:
            raise ConfigError(problems)

    @classmethod
    def for_device(cls, device_type: DeviceType) -> Policy:
        """The defaults of `device_type` (a turnstile: 10 minutes of anti-passback, tap-on)."""
        if device_type is DeviceType.TURNSTILE:
            return cls(device_type, tap_type=TapType.ON, passback_ms=10 * MINUTE_MS)
        return cls(device_type)

    def media_id(self, media: MediaKind) -> str | None:
        """The tariff's fare media id for `media`, if the operator mapped one."""
        return dict(self.fare_media).get(media)

    @property
    def guards_passback(self) -> bool:
        return self.passback_ms > 0 and self.tap_type is not TapType.OFF

    def stoplist_stale(self, confirmed_ms: int | None, now_ms: int) -> bool:
        """True if the stoplist was never confirmed current, or not within its maximum age."""
        return confirmed_ms is None or now_ms - confirmed_ms > self.stoplist_max_age_ms


def assess_clock(time_ms: int, offset_ms: int | None, max_drift_ms: int) -> ClockState:
    """How far to trust a reading of the local clock.

    `offset_ms` is the server's clock minus ours at the last sync (None if never
    measured). Before 2024 the clock is unset; past the drift bound it is drifting.
    """
    if time_ms < EARLIEST_PLAUSIBLE_MS:
        return ClockState.UNSET
    if offset_ms is not None and abs(offset_ms) > max_drift_ms:
        return ClockState.DRIFTING
    return ClockState.SYNCED
