"""A top-up is in the ledger's currency, on the operator API and the command line: one in
another currency opens no account that the validators' fares would then be refused on."""

from __future__ import annotations

import io

import pytest

from farebox.server import environment
from farebox.server.cli import main
from tests.server.operator.conftest import Operator, records, sync
from tests.server.sync.conftest import Device
from tests.support.records import accepted_tap

CARD = "nfc:cc01"


async def test_a_top_up_in_another_currency_is_refused_and_the_card_still_rides(
    operator: Operator, device: Device
) -> None:
    path = f"/api/v1/accounts/{CARD}/top-ups"
    body = {"amount": 500, "currency": "USD", "channel": "kiosk"}
    headers = {"Idempotency-Key": "u1"}
    refused = await operator.call("POST", path, json=body, headers=headers, expect=400)
    assert refused["code"] == "malformed"
    assert (
        refused["detail"] == "this ledger keeps KZT (FAREBOX_CURRENCY); a top-up in USD is refused"
    )
    await operator.call("GET", f"/api/v1/accounts/{CARD}", expect=404)
    taps = [accepted_tap("nfc:dd01"), accepted_tap(CARD), accepted_tap("nfc:ee01")]
    assert await sync(device, records(device, taps, operator.clock())) == 200
    account = await operator.call("GET", f"/api/v1/accounts/{CARD}")
    assert (account["currency"], account["balance"]) == ("KZT", -20000)
    # The same key in the ledger's currency is a first posting: the refusal kept nothing.
    kzt = {**body, "currency": "KZT", "amount": 50000}
    await operator.call("POST", path, json=kzt, headers=headers, expect=201)


def test_the_command_line_refuses_a_top_up_in_another_currency(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def topup(*options: str) -> int:
        argv = ["account", "topup", CARD, "5", "--channel", "kiosk", *options]
        return main([*argv, "--db", store_url], io.StringIO())

    assert main(["init", "--db", store_url], io.StringIO()) == 0
    assert topup("--ref", "p1", "--currency", "USD") == 2
    assert "this ledger keeps KZT (FAREBOX_CURRENCY)" in capsys.readouterr().err
    assert main(["account", "show", CARD, "--db", store_url], io.StringIO()) == 1
    monkeypatch.setenv(environment.FAREBOX_CURRENCY, "USD")
    assert topup("--ref", "p2") == 0
    out = io.StringIO()
    assert main(["account", "show", CARD, "--db", store_url], out) == 0
    assert "balance    5.00 USD" in out.getvalue()
