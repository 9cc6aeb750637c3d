"""Each operator endpoint's happy path, over real HTTP on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiohttp

from farebox.protocol.enrollment import DeviceKind
from farebox.protocol.heartbeat import Heartbeat, encode_heartbeat
from farebox.protocol.money import Money
from farebox.protocol.packages import PackageKind
from farebox.protocol.records import MediaKind
from tests.server.operator.conftest import Operator, records, sync
from tests.server.sync.conftest import Device
from tests.support.records import accepted_tap, denied_tap

TARIFF = Path(__file__).resolve().parents[3] / "packaging" / "tariffs" / "city-kzt.toml"
RIDER = "nfc:04a1b2c3d4e5f6"  # the token of `accepted_tap`
HOUR_MS = 3_600_000


async def test_devices_show_cursor_last_sync_and_heartbeat_and_can_be_revoked(
    operator: Operator, device: Device
) -> None:
    assert await sync(device, records(device, [accepted_tap()] * 3, operator.clock())) == 200
    beat = Heartbeat(
        device.id, operator.clock(), {PackageKind.STOPLIST: 2}, journal_depth=5,
        oldest_unsynced_ms=operator.clock() - 1000, clock_offset_ms=-12,
        disk_free_bytes=10**9, readers={"nfc": "ok"},
    )  # fmt: skip
    status, _, _ = await device.request("POST", "/v1/heartbeat", encode_heartbeat(beat))
    assert status == 204
    (listed,) = (await operator.call("GET", "/api/v1/devices"))["devices"]
    assert listed["id"] == device.id
    assert (listed["kind"], listed["cursor"], listed["refusals"]) == ("bus", 3, 0)
    assert (listed["synced_ms"], listed["revoked"]) == (operator.clock(), False)
    assert listed["heartbeat"]["journal_depth"] == 5
    assert listed["heartbeat"]["versions"] == {"stoplist": 2}
    assert listed["heartbeat"]["readers"] == {"nfc": "ok"}
    revoked = await operator.call("POST", f"/api/v1/devices/{device.id}/revoke")
    assert (revoked["revoked"], revoked["revoked_ms"]) == (True, operator.clock())
    status, _, _ = await device.request("POST", "/v1/heartbeat", encode_heartbeat(beat))
    assert status == 401
    missing = await operator.call("POST", "/api/v1/devices/bus-999/revoke", expect=404)
    assert missing["code"] == "unknown_device"


async def test_a_top_up_is_posted_once_per_idempotency_key(operator: Operator) -> None:
    path = "/api/v1/accounts/nfc:ab01/top-ups"
    body = {"amount": 50000, "currency": "KZT", "channel": "kiosk"}
    key = {"Idempotency-Key": "K-7781"}
    first = await operator.call("POST", path, json=body, headers=key, expect=201)
    again = await operator.call("POST", path, json=body, headers=key, expect=200)
    assert (first["fresh"], again["fresh"]) == (True, False)
    assert (again["transfer"], again["posted_ms"]) == (first["transfer"], first["posted_ms"])
    other = {**body, "amount": 60000}
    conflict = await operator.call("POST", path, json=other, headers=key, expect=409)
    assert conflict["code"] == "idempotency_conflict"
    missing = await operator.call("POST", path, json=body, expect=400)
    assert missing["code"] == "idempotency_key"
    wrong = ({"amount": 1.5}, {"amount": -1}, {"channel": "barter"}, {"currency": "kzt"})
    for bad in ({**body, **change} for change in wrong):
        await operator.call("POST", path, json=bad, headers={"Idempotency-Key": "K-2"}, expect=400)
    account = await operator.call("GET", "/api/v1/accounts/nfc:ab01")
    assert (account["balance"], account["available"], account["currency"]) == (50000, 50000, "KZT")
    (line,) = account["statement"]
    assert (line["id"], line["amount"]) == (first["transfer"], 50000)
    assert line["counterpart"] == "clearing:KZT:kiosk"
    unknown = await operator.call("GET", "/api/v1/accounts/nfc:none", expect=404)
    assert unknown["code"] == "unknown_account"


async def test_a_top_up_takes_a_rider_off_the_stoplist_in_a_new_version(
    operator: Operator, device: Device
) -> None:
    await sync(device, records(device, [accepted_tap()] * 2, operator.clock() - HOUR_MS))
    before = await operator.call("GET", "/api/v1/stoplist")
    assert before["size"] == 1
    account = await operator.call("GET", f"/api/v1/accounts/{RIDER}")
    assert account["balance"] == -40000
    assert account["blocks"] == [{"reason": "balance", "note": None}]
    body = {"amount": 100000, "currency": "KZT", "channel": "sms"}
    path = f"/api/v1/accounts/{RIDER}/top-ups"
    await operator.call("POST", path, json=body, headers={"Idempotency-Key": "sms-1"}, expect=201)
    after = await operator.call("GET", "/api/v1/stoplist")
    assert (after["version"], after["size"]) == (before["version"] + 1, 0)
    assert after["checksum"] != before["checksum"]
    status, _, _ = await device.request("GET", f"/v1/packages/stoplist?have={before['version']}")
    assert status == 200  # the validators' next sync brings the removal


async def test_cards_are_blocked_and_unblocked_with_a_reason(operator: Operator) -> None:
    path = "/api/v1/cards/nfc:lost01"
    blocked = await operator.call("POST", f"{path}/block", json={"reason": "lost", "note": "desk"})
    assert blocked["blocks"] == [{"reason": "lost", "note": "desk"}]
    stoplist = await operator.call("GET", "/api/v1/stoplist")
    assert (stoplist["version"], stoplist["size"]) == (blocked["stoplist_version"], 1)
    unblocked = await operator.call("POST", f"{path}/unblock", json={"reason": "lost"})
    assert unblocked["blocks"] == []
    assert unblocked["stoplist_version"] == blocked["stoplist_version"] + 1
    await operator.call("POST", f"{path}/block", json={"reason": "bored"}, expect=400)
    kept = await operator.call("POST", f"{path}/block", json={"reason": "balance"}, expect=422)
    assert kept["code"] == "ledger_refused"  # balance blocks are the ledger's own


async def test_tariffs_are_published_from_toml_and_listed(
    operator: Operator, device: Device
) -> None:
    assert (await operator.call("GET", "/api/v1/tariffs"))["tariffs"] == []
    text = TARIFF.read_text(encoding="utf-8")
    published = await operator.call("POST", "/api/v1/tariffs", data=text, expect=201)
    assert (published["id"], published["version"]) == ("city-kzt", 1)
    (listed,) = (await operator.call("GET", "/api/v1/tariffs"))["tariffs"]
    assert (listed["version"], listed["bytes"]) == (1, published["bytes"])
    status, _, _ = await device.request("GET", "/v1/packages/tariff?have=0")
    assert status == 200
    broken = await operator.call("POST", "/api/v1/tariffs", data="[tariff", expect=422)
    assert broken["code"] == "invalid_tariff"
    elsewhere = text.replace('timezone = "Asia/Almaty"', 'timezone = "Asia/Bishkek"')
    refused = await operator.call("POST", "/api/v1/tariffs", data=elsewhere, expect=422)
    assert "fare days" in refused["detail"]
    dollars = text.replace('currency = "KZT"', 'currency = "USD"')
    refused = await operator.call("POST", "/api/v1/tariffs", data=dollars, expect=422)
    assert "is in USD, the ledger's fares in KZT" in refused["detail"]
    assert len((await operator.call("GET", "/api/v1/tariffs"))["tariffs"]) == 1


async def test_reports_give_revenue_taps_per_minute_and_sync_lag(
    operator: Operator, device: Device
) -> None:
    start = operator.clock() - HOUR_MS  # 10:00 in Almaty on 2 March 2026
    taps = [accepted_tap(), accepted_tap(), denied_tap(), accepted_tap()]
    await sync(device, records(device, taps, start))
    revenue = await operator.call("GET", "/api/v1/reports/revenue?day=2026-03-02")
    assert revenue["revenue"] == [
        {"carrier": "city", "route": "12", "amount": 60000, "currency": "KZT", "exponent": 2}
    ]
    today = await operator.call("GET", "/api/v1/reports/revenue")
    assert today == revenue  # the default is the fare day in progress
    minutes = await operator.call("GET", "/api/v1/reports/taps-per-minute?day=2026-03-02")
    minute = start - start % 60_000
    assert minutes["minutes"] == [{"minute_ms": minute + i * 60_000, "taps": 1} for i in range(4)]
    other_day = await operator.call("GET", "/api/v1/reports/taps-per-minute?day=2026-03-01")
    assert other_day["minutes"] == []
    await operator.call("GET", "/api/v1/reports/revenue?day=March", expect=400)
    operator.clock.now_ms += 90_000
    lag = await operator.call("GET", "/api/v1/reports/sync-lag")
    assert lag["devices"] == [
        {"device": device.id, "synced_ms": operator.clock() - 90_000, "lag_s": 90.0,
         "journal_depth": None}
    ]  # fmt: skip


async def test_ticket_alerts_list_a_qr_ticket_used_on_two_validators(
    operator: Operator, device: Device, http: aiohttp.ClientSession
) -> None:
    gate = Device(operator, http)
    await gate.enroll(await operator.token("gate-3", DeviceKind.GATE))
    ticket = dataclasses.replace(
        accepted_tap(), media=MediaKind.QR, token="qr:T-42", fare=Money(15000, "KZT")
    )
    other = dataclasses.replace(ticket, token="qr:T-43")
    # Twice on the bus (its first validator: no alert), then once more on the gate, with a
    # ticket the gate is the first to see.
    await sync(device, records(device, [ticket, ticket], operator.clock() - HOUR_MS))
    await sync(gate, records(gate, [ticket, other], operator.clock() - HOUR_MS // 2))
    (alert,) = (await operator.call("GET", "/api/v1/ticket-alerts"))["alerts"]
    assert (alert["token"], alert["device"], alert["first_device"]) == (
        "qr:T-42",
        "gate-3",
        device.id,
    )
