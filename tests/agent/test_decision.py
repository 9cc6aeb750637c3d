"""`decide` over plain values: every reason code and every policy, with the city tariff."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from farebox.agent.decision import (
    RETAP,
    STALE_STOPLIST,
    LocalHistory,
    Now,
    decide,
    identify,
    location_event,
)
from farebox.agent.policy import (
    MINUTE_MS,
    ClockPolicy,
    DeviceType,
    Policy,
    StalePolicy,
    assess_clock,
)
from farebox.agent.store.caches import Cached
from farebox.agent.store.history import PastTap
from farebox.protocol.money import Money
from farebox.protocol.record_values import EARLIEST_PLAUSIBLE_MS
from farebox.protocol.records import (
    ClockState,
    EventKind,
    Location,
    MediaKind,
    Outcome,
    Reason,
    TapType,
)
from tests.agent.builders import MORNING_MS, caches, card, city_tariff, qr_ticket, scan

BUS = Location(route="12", vehicle="bus-017", stop="abay-ave")
STATION = Location(route="M1", stop="almaly")
NOW = Now(MORNING_MS, ClockState.SYNCED)
BUS_POLICY = Policy.for_device(DeviceType.BUS)
GATE_POLICY = Policy.for_device(DeviceType.TURNSTILE)
TOKEN = "nfc:04a1b2c3"
KZT = "KZT"


def past(
    seconds_ago: int,
    outcome: Outcome = Outcome.ACCEPT,
    reason: Reason = Reason.OK,
    *,
    tap_type: TapType = TapType.SINGLE,
    location: Location = BUS,
    fare: int | None = 20000,
) -> PastTap:
    return PastTap(
        seq=1,
        time_ms=MORNING_MS - seconds_ago * 1000,
        tap_type=tap_type,
        outcome=outcome,
        reason=reason,
        fare=Money(fare, KZT) if fare is not None and outcome is Outcome.ACCEPT else None,
        product="bus-ride" if outcome is Outcome.ACCEPT else None,
        category="adult" if outcome is Outcome.ACCEPT else None,
        location=location,
    )


def test_a_first_bus_tap_is_accepted_at_the_tariff_fare() -> None:
    decision = decide(card(), caches(), LocalHistory(), NOW, BUS, BUS_POLICY)
    tap = decision.tap
    assert decision.accepted
    assert decision.remember
    assert (tap.token, tap.media, tap.reason, tap.fare) == (
        TOKEN,
        MediaKind.NFC,
        Reason.OK,
        Money(20000, KZT),
    )
    assert (tap.product, tap.category, tap.tariff_version, tap.stoplist_version) == (
        "bus-ride",
        "adult",
        3,
        41,
    )
    assert tap.flags == ()


def test_a_transfer_within_the_window_is_free() -> None:
    earlier = past(20 * 60, location=Location(route="32", stop="abay-ave"))
    decision = decide(card(), caches(), LocalHistory((earlier,)), NOW, BUS, BUS_POLICY)
    assert decision.accepted
    assert decision.tap.fare == Money(0, KZT)


def test_stoplisted() -> None:
    decision = decide(
        card(), caches(stoplisted=frozenset({TOKEN})), LocalHistory(), NOW, BUS, BUS_POLICY
    )
    assert (decision.tap.outcome, decision.reason, decision.tap.fare) == (
        Outcome.DENY,
        Reason.STOPLISTED,
        None,
    )
    assert decision.remember


def test_card_clash_is_refused_not_guessed() -> None:
    decision = decide(card(clash=True), caches(), LocalHistory(), NOW, BUS, BUS_POLICY)
    assert decision.reason is Reason.CARD_CLASH


def test_no_tariff_and_no_route() -> None:
    assert (
        decide(card(), caches(tariff=False), LocalHistory(), NOW, BUS, BUS_POLICY).reason
        is Reason.NO_TARIFF
    )
    nowhere = Location(vehicle="bus-017")
    assert (
        decide(card(), caches(), LocalHistory(), NOW, nowhere, BUS_POLICY).reason
        is Reason.NO_TARIFF
    )
    unknown_route = Location(route="999", stop="x")
    assert (
        decide(card(), caches(), LocalHistory(), NOW, unknown_route, BUS_POLICY).reason
        is Reason.NO_TARIFF
    )


def test_out_of_service_by_device_config() -> None:
    decision = decide(
        card(), caches(config={"in_service": False}), LocalHistory(), NOW, BUS, BUS_POLICY
    )
    assert decision.reason is Reason.OUT_OF_SERVICE


class TestRetap:
    def test_an_accepted_tap_repeated_is_accepted_with_nothing_to_charge(self) -> None:
        history = LocalHistory((past(30),))
        decision = decide(card(), caches(), history, NOW, BUS, BUS_POLICY)
        assert decision.accepted
        assert decision.tap.fare is None
        assert decision.tap.flags == (RETAP,)
        assert not decision.remember

    def test_a_denied_tap_repeated_gives_the_same_reason(self) -> None:
        history = LocalHistory((past(10, Outcome.DENY, Reason.STOPLISTED),))
        decision = decide(card(), caches(), history, NOW, BUS, BUS_POLICY)
        assert (decision.reason, decision.tap.flags, decision.remember) == (
            Reason.STOPLISTED,
            (RETAP,),
            False,
        )

    def test_after_the_window_a_tap_is_a_new_ride(self) -> None:
        history = LocalHistory((past(61, location=Location(route="32", stop="x")),))
        decision = decide(card(), caches(), history, NOW, BUS, BUS_POLICY)
        assert decision.remember
        assert decision.tap.flags == ()

    def test_the_window_is_configurable(self) -> None:
        policy = replace(BUS_POLICY, retap_window_ms=5_000)
        decision = decide(card(), caches(), LocalHistory((past(10),)), NOW, BUS, policy)
        assert decision.remember


class TestPassback:
    def test_a_turnstile_refuses_a_second_entry_within_the_passback_time(self) -> None:
        entered = past(5 * 60, tap_type=TapType.ON, location=STATION)
        decision = decide(card(), caches(), LocalHistory((entered,)), NOW, STATION, GATE_POLICY)
        assert decision.reason is Reason.PASSBACK
        assert decision.remember

    def test_even_inside_the_retap_window(self) -> None:
        entered = past(10, tap_type=TapType.ON, location=STATION)
        decision = decide(card(), caches(), LocalHistory((entered,)), NOW, STATION, GATE_POLICY)
        assert decision.reason is Reason.PASSBACK

    def test_after_the_passback_time_the_card_enters(self) -> None:
        entered = past(11 * 60, tap_type=TapType.ON, location=STATION, fare=25000)
        decision = decide(card(), caches(), LocalHistory((entered,)), NOW, STATION, GATE_POLICY)
        assert decision.accepted
        assert decision.tap.tap_type is TapType.ON

    def test_another_station_is_not_passback(self) -> None:
        elsewhere = past(
            5 * 60, tap_type=TapType.ON, location=Location(route="M1", stop="baikonur")
        )
        decision = decide(card(), caches(), LocalHistory((elsewhere,)), NOW, STATION, GATE_POLICY)
        assert decision.accepted

    def test_a_bus_has_no_passback(self) -> None:
        decision = decide(card(), caches(), LocalHistory((past(5 * 60),)), NOW, BUS, BUS_POLICY)
        assert decision.accepted
        assert decision.remember


class TestClock:
    def test_assessing_the_clock(self) -> None:
        assert assess_clock(0, None, MINUTE_MS) is ClockState.UNSET
        assert assess_clock(EARLIEST_PLAUSIBLE_MS - 1, 0, MINUTE_MS) is ClockState.UNSET
        assert assess_clock(MORNING_MS, None, MINUTE_MS) is ClockState.SYNCED
        assert assess_clock(MORNING_MS, MINUTE_MS + 1, MINUTE_MS) is ClockState.DRIFTING
        assert assess_clock(MORNING_MS, -MINUTE_MS, MINUTE_MS) is ClockState.SYNCED

    @pytest.mark.parametrize("state", [ClockState.UNSET, ClockState.DRIFTING])
    def test_deny_policy(self, state: ClockState) -> None:
        decision = decide(card(), caches(), LocalHistory(), Now(MORNING_MS, state), BUS, BUS_POLICY)
        assert decision.reason is Reason.CLOCK_UNSET

    @pytest.mark.parametrize(
        ("state", "flag"),
        [(ClockState.UNSET, "clock_unset"), (ClockState.DRIFTING, "clock_drifting")],
    )
    def test_accept_and_flag_policy(self, state: ClockState, flag: str) -> None:
        policy = replace(BUS_POLICY, clock=ClockPolicy.ACCEPT_FLAGGED)
        decision = decide(card(), caches(), LocalHistory(), Now(MORNING_MS, state), BUS, policy)
        assert decision.accepted
        assert decision.tap.flags == (flag,)


class TestStaleStoplist:
    STALE = MORNING_MS - 25 * 3_600_000

    def test_accept_with_a_risk_flag(self) -> None:
        decision = decide(
            card(), caches(stoplist_at_ms=self.STALE), LocalHistory(), NOW, BUS, BUS_POLICY
        )
        assert decision.accepted
        assert decision.tap.flags == (STALE_STOPLIST,)

    def test_never_loaded_is_stale(self) -> None:
        decision = decide(card(), caches(stoplist_at_ms=None), LocalHistory(), NOW, BUS, BUS_POLICY)
        assert decision.tap.flags == (STALE_STOPLIST,)

    def test_deny_unknown_tokens(self) -> None:
        policy = replace(BUS_POLICY, stale=StalePolicy.DENY_UNKNOWN)
        stale = caches(stoplist_at_ms=self.STALE)
        assert (
            decide(card(), stale, LocalHistory(), NOW, BUS, policy).reason is Reason.STALE_STOPLIST
        )
        known = LocalHistory((past(3 * 3600),))
        decision = decide(card(), stale, known, NOW, BUS, policy)
        assert decision.accepted
        assert decision.tap.flags == (STALE_STOPLIST,)

    def test_a_stale_list_still_stops_what_it_lists(self) -> None:
        stale = caches(stoplisted=frozenset({TOKEN}), stoplist_at_ms=self.STALE)
        assert (
            decide(card(), stale, LocalHistory(), NOW, BUS, BUS_POLICY).reason is Reason.STOPLISTED
        )


class TestQrTickets:
    def test_a_valid_ticket_is_accepted_at_its_product_value(self) -> None:
        decision = decide(scan(qr_ticket()), caches(), LocalHistory(), NOW, BUS, BUS_POLICY)
        tap = decision.tap
        assert decision.accepted
        assert (tap.media, tap.token, tap.fare, tap.product) == (
            MediaKind.QR,
            "qr:" + b"T-0001".hex(),
            Money(20000, KZT),
            "bus-ride",
        )
        assert decision.ticket is not None
        assert decision.ticket.ticket_id == b"T-0001"

    def test_a_used_single_ride_ticket(self) -> None:
        history = LocalHistory(ticket_uses=1)
        decision = decide(scan(qr_ticket()), caches(), history, NOW, BUS, BUS_POLICY)
        assert decision.reason is Reason.ALREADY_USED

    def test_a_multi_ride_ticket_runs_out(self) -> None:
        text = qr_ticket(uses=3)
        assert decide(
            scan(text), caches(), LocalHistory(ticket_uses=2), NOW, BUS, BUS_POLICY
        ).accepted
        spent = decide(scan(text), caches(), LocalHistory(ticket_uses=3), NOW, BUS, BUS_POLICY)
        assert spent.reason is Reason.INSUFFICIENT_PRODUCT

    def test_expired_and_not_yet_valid(self) -> None:
        old = qr_ticket(valid_from_ms=MORNING_MS - 7_200_000, valid_until_ms=MORNING_MS - 3_600_000)
        soon = qr_ticket(
            valid_from_ms=MORNING_MS + 3_600_000, valid_until_ms=MORNING_MS + 7_200_000
        )
        assert (
            decide(scan(old), caches(), LocalHistory(), NOW, BUS, BUS_POLICY).reason
            is Reason.EXPIRED
        )
        assert (
            decide(scan(soon), caches(), LocalHistory(), NOW, BUS, BUS_POLICY).reason
            is Reason.NOT_YET_VALID
        )

    def test_a_forged_ticket(self) -> None:
        forged = qr_ticket(key=Ed25519PrivateKey.from_private_bytes(b"\x66" * 32))
        decision = decide(scan(forged), caches(), LocalHistory(), NOW, BUS, BUS_POLICY)
        assert decision.reason is Reason.BAD_SIGNATURE
        assert decision.tap.token == "qr:" + b"T-0001".hex()

    def test_unreadable_text_is_unknown_media(self) -> None:
        decision = decide(
            scan("https://example.org/menu"), caches(), LocalHistory(), NOW, BUS, BUS_POLICY
        )
        assert decision.reason is Reason.UNKNOWN_MEDIA
        assert decision.tap.token.startswith("qr:unreadable:")
        assert identify(scan("https://example.org/menu")).token == decision.tap.token

    def test_a_product_the_tariff_does_not_sell(self) -> None:
        text = qr_ticket(product="ferry-ride")
        assert (
            decide(scan(text), caches(), LocalHistory(), NOW, BUS, BUS_POLICY).reason
            is Reason.NO_TARIFF
        )


def test_tap_off_adds_only_what_the_completed_leg_costs_beyond_the_hold() -> None:
    on_policy = replace(BUS_POLICY, tap_type=TapType.ON)
    off_policy = replace(BUS_POLICY, tap_type=TapType.OFF)
    platform = Location(route="S1", stop="S1-almaty-2")
    entry = decide(card(), caches(), LocalHistory(), NOW, platform, on_policy)
    assert entry.tap.fare == Money(40000, KZT)  # the maximum fare, held at tap-on
    held = past(30 * 60, tap_type=TapType.ON, location=platform, fare=40000)
    exit_ = decide(
        card(),
        caches(),
        LocalHistory((held,)),
        NOW,
        Location(route="S1", stop="S1-sayakhat"),
        off_policy,
    )
    assert exit_.accepted
    assert exit_.tap.fare == Money(0, KZT)


def test_route_change_is_an_event() -> None:
    assert location_event(BUS, BUS) is None
    event = location_event(
        BUS, Location(route="32", vehicle="bus-017", stop="abay-ave"), "outbound"
    )
    assert event is not None
    assert event.kind is EventKind.ROUTE_CHANGE
    assert dict(event.detail) == {"route_from": "12", "route_to": "32", "direction": "outbound"}


def test_a_tariff_sent_ahead_of_its_day_prices_taps_only_from_then() -> None:
    current = city_tariff()
    future = replace(current, version=2, effective_from=datetime(2026, 12, 1, tzinfo=UTC))
    held = replace(caches(), tariff=Cached(4, future, 0), earlier_tariffs=(Cached(3, current, 0),))
    before = decide(card(), held, LocalHistory(), NOW, BUS, BUS_POLICY)
    assert (before.accepted, before.tap.tariff_version) == (True, 3)
    december = Now(int(datetime(2026, 12, 1, 8, tzinfo=UTC).timestamp() * 1000), ClockState.SYNCED)
    after = decide(card(at_ms=december.time_ms), held, LocalHistory(), december, BUS, BUS_POLICY)
    assert (after.accepted, after.tap.tariff_version) == (True, 4)
    early = Now(int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000), ClockState.SYNCED)
    assert decide(card(), held, LocalHistory(), early, BUS, BUS_POLICY).reason is Reason.NO_TARIFF
