"""The decision on a tap: a pure function from what is known to a `Decision` value.

    identity = identify(presentation)                 # which token, before any check
    decision = decide(presentation, caches, history, now, location, policy)

Nothing here reads a clock, a file or a socket: the runtime gathers the caches, the
token's local history and the time, and records `decision.tap` before any feedback. A
denial is a value with its reason. The checks run in the order of ARCHITECTURE section 4:
service and clock, the media itself, anti-passback and re-tap, the stoplist, then the
product and the provisional fare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace

from farebox.agent.fares import provisional_fare
from farebox.agent.policy import ClockPolicy, Policy, StalePolicy
from farebox.agent.presentation import Presentation
from farebox.agent.store.caches import Caches
from farebox.agent.store.history import PastTap, TicketUse
from farebox.protocol.errors import (
    InvalidValueError,
    ProtocolError,
    SignatureError,
    TicketExpiredError,
    TicketNotYetValidError,
)
from farebox.protocol.money import Money
from farebox.protocol.records import (
    ClockState,
    Event,
    EventKind,
    Location,
    MediaKind,
    Outcome,
    Reason,
    Tap,
)
from farebox.protocol.tariffs.errors import NoFareError
from farebox.protocol.tariffs.journey import Rider
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tickets import cwt, ticket
from farebox.protocol.tickets.issuers import IssuerKeySet
from farebox.protocol.tickets.ticket import Ticket

RETAP = "retap"
STALE_STOPLIST = "stale_stoplist"
DECISION_ERROR = "decision_error"
# Denials for the moment, not for the media: a second card in the field, the validator's
# service, clock, tariff or stoplist. They are never remembered as a token's answer, so a
# tap after one (the second card taken away, the clock set) is decided afresh.
SITUATIONAL = frozenset(
    {
        Reason.OUT_OF_SERVICE,
        Reason.CARD_CLASH,
        Reason.CLOCK_UNSET,
        Reason.STALE_STOPLIST,
        Reason.NO_TARIFF,
    }
)
CLOCK_FLAGS = {ClockState.UNSET: "clock_unset", ClockState.DRIFTING: "clock_drifting"}
_NO_KEYS = IssuerKeySet(())


@dataclass(frozen=True, slots=True)
class Now:
    """The time of the tap and how far the clock that gave it is trusted."""

    time_ms: int
    clock: ClockState


@dataclass(frozen=True, slots=True)
class Identity:
    """The token a presentation stands for; `ticket_id` for a QR ticket that decodes."""

    media: MediaKind
    token: str
    ticket_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class LocalHistory:
    """The token's earlier decisions at this validator, oldest first, and ticket uses."""

    taps: tuple[PastTap, ...] = ()
    ticket_uses: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """What to record: the tap, whether it is a new decision to remember, a ticket use."""

    tap: Tap
    remember: bool
    ticket: TicketUse | None = None

    @property
    def accepted(self) -> bool:
        return self.tap.outcome is Outcome.ACCEPT

    @property
    def reason(self) -> Reason:
        return self.tap.reason


def identify(presentation: Presentation) -> Identity:
    """The token of a presentation, reading a QR ticket's id without trusting it yet."""
    card = presentation.token
    if card is not None:
        return Identity(MediaKind.NFC, card)
    try:
        ticket_id = cwt.decode_claims(ticket.decode(presentation.text or "").payload).cwt_id
    except (ProtocolError, ValueError):
        ticket_id = None
    # The id is read before the signature is checked: one longer than a ticket's can be
    # is forged, and must not make a token longer than a record may hold.
    if ticket_id is None or not 0 < len(ticket_id) <= ticket.MAX_TICKET_ID_BYTES:
        return _unreadable(presentation)
    return Identity(MediaKind.QR, f"qr:{ticket_id.hex()}", ticket_id)


def _unreadable(presentation: Presentation) -> Identity:
    # Unreadable codes are journalled under a digest of their text, for analysis.
    text = presentation.text or ""
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
    return Identity(MediaKind.QR, f"qr:unreadable:{digest}")


def refusal(presentation: Presentation, caches: Caches, policy: Policy) -> Decision:
    """The denial journalled for a tap whose decision failed: `unknown_media`, flagged.

    It decodes nothing (a card goes under its uid, a code under the digest of its text),
    so it does not fail the way the decision did; it is never remembered as an answer.
    """
    card = presentation.token
    who = _unreadable(presentation) if card is None else Identity(MediaKind.NFC, card)
    verdict = _Verdict(who, caches, policy, 0, (DECISION_ERROR,))
    return replace(verdict.deny(Reason.UNKNOWN_MEDIA), remember=False)


def decide(
    presentation: Presentation,
    caches: Caches,
    history: LocalHistory,
    now: Now,
    location: Location,
    policy: Policy,
) -> Decision:
    """Decide a tap; every outcome, including each denial, is a returned `Decision`."""
    who = identify(presentation)
    tariff = caches.tariff_at(now.time_ms)
    verdict = _Verdict(who, caches, policy, 0 if tariff is None else tariff.version)
    if not _in_service(caches.config.value if caches.config else {}):
        return verdict.deny(Reason.OUT_OF_SERVICE)
    if presentation.clash:
        return verdict.deny(Reason.CARD_CLASH)
    if now.clock is not ClockState.SYNCED:
        if policy.clock is ClockPolicy.DENY:
            return verdict.deny(Reason.CLOCK_UNSET)
        verdict = verdict.flagged(CLOCK_FLAGS[now.clock])
    held = None
    if who.media is MediaKind.QR:
        keys = caches.issuers.value if caches.issuers else _NO_KEYS
        try:
            held = ticket.verify(presentation.text or "", keys, now.time_ms // 1000)
        except TicketExpiredError:
            return verdict.deny(Reason.EXPIRED)
        except TicketNotYetValidError:
            return verdict.deny(Reason.NOT_YET_VALID)
        except SignatureError:
            return verdict.deny(Reason.BAD_SIGNATURE)
        except (ProtocolError, ValueError):
            return verdict.deny(Reason.UNKNOWN_MEDIA)
    if _passback(history.taps, now.time_ms, location, policy):
        return verdict.deny(Reason.PASSBACK)
    earlier = _retap(history.taps, now.time_ms, policy)
    if earlier is not None:
        return verdict.retap(earlier)
    if who.token in caches.stoplist:
        return verdict.deny(Reason.STOPLISTED)
    if policy.stoplist_stale(caches.stoplist.confirmed_ms, now.time_ms):
        known = any(p.outcome is Outcome.ACCEPT for p in history.taps)
        if policy.stale is StalePolicy.DENY_UNKNOWN and not known:
            return verdict.deny(Reason.STALE_STOPLIST)
        verdict = verdict.flagged(STALE_STOPLIST)
    if held is not None and history.ticket_uses >= held.uses:
        return verdict.deny(Reason.ALREADY_USED if held.uses == 1 else Reason.INSUFFICIENT_PRODUCT)
    if tariff is None:
        return verdict.deny(Reason.NO_TARIFF)
    return _priced(verdict, tariff.value, history, now, location, held)


def _in_service(config: Mapping[str, object]) -> bool:
    return config.get("in_service", True) is not False


def _passback(taps: tuple[PastTap, ...], time_ms: int, location: Location, policy: Policy) -> bool:
    """True if the token entered here within the anti-passback time.

    It is checked before the re-tap window: on a turnstile, repeating an accepted entry
    would open the gate again for whoever stands behind.
    """
    if not policy.guards_passback:
        return False
    return any(
        _within(past, time_ms, policy.passback_ms)
        and past.outcome is Outcome.ACCEPT
        and past.tap_type is policy.tap_type
        and past.location.stop == location.stop
        for past in taps
    )


def _retap(taps: tuple[PastTap, ...], time_ms: int, policy: Policy) -> PastTap | None:
    """The earlier decision a tap inside the re-tap window repeats."""
    if taps and _within(taps[-1], time_ms, policy.retap_window_ms):
        return taps[-1]
    return None


def _within(past: PastTap, time_ms: int, window_ms: int) -> bool:
    """True if `past` was stamped in the `window_ms` before `time_ms`.

    A tap stamped later than this one was stamped by a clock since stepped back (NTP
    correcting a fast clock): its time says nothing of how long ago it was, so it neither
    holds a rider back by anti-passback nor is repeated as a re-tap.
    """
    return 0 <= time_ms - past.time_ms < window_ms


def _priced(
    verdict: _Verdict,
    tariff: Tariff,
    history: LocalHistory,
    now: Now,
    location: Location,
    held: Ticket | None,
) -> Decision:
    media = verdict.policy.media_id(verdict.who.media)
    try:
        if held is not None:
            # A QR ticket is prepaid: the validation moves the product's value to revenue.
            price = (
                tariff.price(held.product, held.category, media)
                if held.product in tariff.prices
                else None
            )
            if price is None:
                return verdict.deny(Reason.NO_TARIFF)
            use = TicketUse(held.ticket_id, held.valid_until * 1000)
            return verdict.accept(price, held.product, held.category, use)
        quoted = provisional_fare(
            tariff,
            Rider(fare_media_id=media),
            history.taps,
            verdict.policy.tap_type,
            location,
            now.time_ms,
        )
    except (NoFareError, InvalidValueError):
        return verdict.deny(Reason.NO_TARIFF)
    return verdict.accept(quoted.fare, quoted.product, tariff.default_category, None)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """Builds the tap to record, with the flags gathered on the way."""

    who: Identity
    caches: Caches
    policy: Policy
    tariff_version: int
    flags: tuple[str, ...] = ()

    def flagged(self, flag: str) -> _Verdict:
        return replace(self, flags=(*self.flags, flag))

    def _tap(
        self,
        outcome: Outcome,
        reason: Reason,
        fare: Money | None,
        product: str | None,
        category: str | None,
        extra: tuple[str, ...] = (),
    ) -> Tap:
        return Tap(
            media=self.who.media,
            token=self.who.token,
            tap_type=self.policy.tap_type,
            outcome=outcome,
            reason=reason,
            fare=fare,
            product=product,
            category=category,
            tariff_version=self.tariff_version,
            stoplist_version=self.caches.stoplist.version,
            flags=tuple(sorted({*self.flags, *extra})),
        )

    def deny(self, reason: Reason) -> Decision:
        tap = self._tap(Outcome.DENY, reason, None, None, None)
        return Decision(tap, remember=reason not in SITUATIONAL)

    def accept(
        self, fare: Money, product: str | None, category: str | None, use: TicketUse | None
    ) -> Decision:
        tap = self._tap(Outcome.ACCEPT, Reason.OK, fare, product, category)
        return Decision(tap, remember=True, ticket=use)

    def retap(self, earlier: PastTap) -> Decision:
        # The same answer again, with nothing new to charge: the first tap carries the fare.
        tap = self._tap(
            earlier.outcome, earlier.reason, None, earlier.product, earlier.category, (RETAP,)
        )
        return Decision(tap, remember=False)


def location_event(old: Location, new: Location, direction: str | None = None) -> Event | None:
    """The event a change of route, vehicle or stop is journalled as, or None if unchanged."""
    if old == new:
        return None
    detail: dict[str, str | int] = {}
    for name in ("route", "vehicle", "stop"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            detail[f"{name}_from"] = before or "-"
            detail[f"{name}_to"] = after or "-"
    if direction is not None:
        detail["direction"] = direction
    return Event.of(EventKind.ROUTE_CHANGE, **detail)
