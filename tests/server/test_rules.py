"""The pure parts of the ledger: fare days, posting rules, transfer values, stoplist algebra."""

from __future__ import annotations

from datetime import date, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farebox.protocol.money import Money
from farebox.protocol.records import (
    ClockState,
    Location,
    MediaKind,
    Outcome,
    Reason,
    Record,
    Tap,
    TapType,
)
from farebox.protocol.stoplist import StoplistChecksum
from farebox.server.errors import ConfigurationError
from farebox.server.ledger.accounts import (
    Account,
    AccountKind,
    Channel,
    KnownAccounts,
    rider_account,
)
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.posting import (
    fare_accounts,
    fare_transfer,
    reversal_transfer,
    tap_from_record,
    top_up_transfer,
)
from farebox.server.ledger.settlement import DayState, DayTap, settlement_transfers
from farebox.server.ledger.stoplist import (
    EMPTY_HEAD,
    BlockChange,
    BlockReason,
    Change,
    net_delta,
    package_change,
    plan_changes,
)
from farebox.server.ledger.transfers import Phase, Transfer, TransferKind
from tests.server.conftest import ALMATY
from tests.server.helpers import at, kzt, tap, top_up


def test_a_ride_after_midnight_belongs_to_the_evening_before() -> None:
    assert ALMATY.day_of(at(3, "02:59")) == date(2026, 3, 2)
    assert ALMATY.day_of(at(3, "03:00")) == date(2026, 3, 3)
    assert ALMATY.closes_at_ms(date(2026, 3, 2)) == at(3, "03:00")
    assert ALMATY.last_closed(at(3, "03:00")) == date(2026, 3, 2)
    bishkek = FareDayPolicy.parse("Asia/Bishkek", "00:00")
    assert bishkek.day_of(at(3, "02:59")) == date(2026, 3, 3)


@pytest.mark.parametrize(("zone", "boundary"), [("Mars/Olympus", "03:00"), ("UTC", "3 am")])
def test_a_bad_fare_day_setting_is_refused(zone: str, boundary: str) -> None:
    with pytest.raises(ConfigurationError):
        FareDayPolicy.parse(zone, boundary)


def test_a_boundary_with_seconds_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        FareDayPolicy(ALMATY.zone, time(3, 0, 30))


def record(outcome: Outcome, fare: Money | None) -> Record:
    body = Tap(MediaKind.NFC, "nfc:0a0b", TapType.SINGLE, outcome,
               Reason.OK if outcome is Outcome.ACCEPT else Reason.STOPLISTED,
               fare, None, "adult", 1, 1)  # fmt: skip
    return Record("bus-7", 12, bytes(32), at(2, "08:00"), ClockState.SYNCED,
                  Location("12", "bus-7", "s3"), body)  # fmt: skip


def test_an_accepted_tap_posts_its_fare_and_a_denied_tap_posts_nothing() -> None:
    accepted = tap_from_record(record(Outcome.ACCEPT, kzt(200)), lambda route: "citybus")
    assert accepted is not None
    transfer = fare_transfer(accepted, ALMATY)
    assert (transfer.key, transfer.debit, transfer.credit, transfer.amount) == (
        "tap:bus-7:12", "rider:nfc:0a0b", "revenue:KZT:citybus:12", kzt(200),
    )  # fmt: skip
    assert transfer.fare_day == date(2026, 3, 2)
    assert tap_from_record(record(Outcome.DENY, None), lambda route: "citybus") is None


def test_a_top_up_moves_money_from_the_channel_to_the_rider() -> None:
    transfer = top_up_transfer(top_up("nfc:0a", 500, "sms-77"))
    assert (transfer.key, transfer.debit, transfer.credit) == (
        "top_up:sms:sms-77", "clearing:KZT:sms", "rider:nfc:0a",
    )  # fmt: skip


def test_a_reversal_swaps_the_accounts_and_keeps_the_fare_day() -> None:
    fare = fare_transfer(tap("bus-1", 1, "nfc:0a", at(2, "08:00")), ALMATY)
    back = reversal_transfer(fare, key="rev-1", time_ms=0, reason="test")
    assert (back.debit, back.credit, back.amount, back.fare_day, back.origin) == (
        fare.credit, fare.debit, fare.amount, fare.fare_day, fare.key,
    )  # fmt: skip


BAD_TRANSFERS = [
    ({"amount": 20000.0}, TypeError),  # float money
    ({"amount": Money(-1, "KZT")}, ValueError),
    ({"amount": Money(0, "KZT")}, ValueError),  # only a fare may be free
    ({"credit": "rider:nfc:0a"}, ValueError),  # debits and credits the same account
    ({"key": "has space"}, ValueError),
    ({"key": ""}, ValueError),
    ({"phase": Phase.POST}, ValueError),  # resolves nothing
    ({"phase": Phase.PENDING}, ValueError),  # a hold without a timeout
    ({"device": "bus-1"}, ValueError),  # a device without a seq
]


@pytest.mark.parametrize(("change", "error"), BAD_TRANSFERS)
def test_malformed_transfers_are_refused_on_construction(
    change: dict[str, object], error: type[Exception]
) -> None:
    fields: dict[str, object] = {
        "key": "k-1", "kind": TransferKind.ADJUSTMENT, "debit": "rider:nfc:0a",
        "credit": "adjustment:KZT", "amount": kzt(1), "event_ms": 0,
    }  # fmt: skip
    with pytest.raises(error):
        Transfer(**{**fields, **change})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ident", "kind", "limit"),
    [("rider:x\ny", AccountKind.RIDER, 0), ("rider:x ", AccountKind.RIDER, 0),
     ("revenue:KZT:a:b", AccountKind.RIDER, 0),
     ("clearing:KZT:sms", AccountKind.CLEARING, 100), ("rider:nfc:01", AccountKind.RIDER, -1)],
)  # fmt: skip
def test_malformed_accounts_are_refused(ident: str, kind: AccountKind, limit: int) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        Account(ident, kind, "KZT", limit)


def test_settlement_moves_each_carriers_difference_once() -> None:
    taps = (
        DayTap("tap:b:1", 1, "revenue:KZT:a:1", "1", kzt(200)),
        DayTap("tap:b:2", 2, "revenue:KZT:b:2", "2", kzt(200)),
    )
    charged = {"revenue:KZT:a:1": 20000, "revenue:KZT:b:2": 20000}
    state = DayState("rider:nfc:0a", date(2026, 3, 2), 0, dirty=True, fares=2, taps=taps,
                     charged=charged)  # fmt: skip
    moves = settlement_transfers(state, [kzt(200), kzt(0)], currency="KZT", time_ms=0)
    assert [(t.debit, t.credit, t.amount) for t in moves] == [
        ("revenue:KZT:b:2", "rider:nfc:0a", kzt(200))
    ]
    assert moves[0].key == "settle:rider:nfc:0a:2026-03-02:1:revenue:KZT:b:2"
    with pytest.raises(ValueError, match="amounts for"):
        settlement_transfers(state, [kzt(200)], currency="KZT", time_ms=0)


TOKENS = st.sampled_from([f"nfc:{n:02x}" for n in range(6)])
REQUESTS = st.lists(
    st.builds(BlockChange, TOKENS, st.sampled_from(list(BlockReason)), st.booleans()),
    max_size=40,
)


@given(REQUESTS, st.data())
def test_deltas_between_any_two_versions_reach_the_later_list(
    requests: list[BlockChange], data: st.DataObject
) -> None:
    """Apply requests one at a time; any delta from an earlier version reaches the later,
    and the plans' growth keeps the list's size."""
    head = EMPTY_HEAD
    size = 0
    reasons: dict[str, frozenset[BlockReason]] = {}
    lists: dict[int, frozenset[str]] = {0: frozenset()}
    changes: list[Change] = []
    for request in requests:
        plan = plan_changes(head, reasons, [request])
        changes += plan.changes
        size += plan.growth
        held = set(reasons.get(request.token, frozenset()))
        (held.add if request.add else held.discard)(request.reason)
        reasons = {**reasons, request.token: frozenset(held)}
        head = plan.head
        listed = frozenset(token for token, found in reasons.items() if found)
        lists[head.version] = listed
        assert head.checksum == StoplistChecksum.of(listed).digest()
        assert size == len(listed)
    since = data.draw(st.integers(0, head.version))
    delta = net_delta(since, head, [c for c in changes if c.version > since])
    assert (lists[since] | set(delta.added)) - set(delta.removed) == lists[head.version]
    assert not set(delta.added) & lists[since]
    assert set(delta.removed) <= lists[since]
    change = package_change(delta)
    assert not change.full
    assert change.added == frozenset(delta.added)
    assert change.removed == frozenset(delta.removed)


def test_a_second_reason_does_not_make_a_new_version() -> None:
    first = plan_changes(EMPTY_HEAD, {}, [BlockChange("nfc:01", BlockReason.LOST, add=True)])
    second = plan_changes(
        first.head,
        {"nfc:01": frozenset({BlockReason.LOST})},
        [BlockChange("nfc:01", BlockReason.FRAUD, add=True)],
    )
    assert first.head.version == 1
    assert second.head == first.head
    assert second.reasons_added
    assert not second.changes


def test_rider_accounts_name_their_token() -> None:
    assert rider_account("nfc:0a", "KZT").id == "rider:nfc:0a"
    assert Channel("kiosk") is Channel.KIOSK


def test_known_accounts_are_remembered_up_to_a_bound() -> None:
    known = KnownAccounts(limit=3)
    known.add(["rider:nfc:01", "rider:nfc:02"])
    assert "rider:nfc:01" in known
    taps = [tap("bus-1", 1, "nfc:01", at(2, "08:00")), tap("bus-1", 2, "nfc:03", at(2, "08:05"))]
    opened = fare_accounts(taps, lambda token, currency, _: rider_account(token, currency), known)
    assert [account.id for account in opened] == ["revenue:KZT:citybus:12", "rider:nfc:03"]
    known.add(["rider:nfc:03", "rider:nfc:04"])
    assert "rider:nfc:01" not in known  # past the bound it starts over
    assert "rider:nfc:04" in known
