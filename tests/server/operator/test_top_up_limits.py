"""A top-up's upper bound, on the operator API and the command line, and a balance that
would pass 64 bits refused rather than failing, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from farebox.protocol.money import Money
from farebox.protocol.wire import INT64_MAX
from farebox.server import environment
from farebox.server.cli import main
from farebox.server.errors import LedgerError
from farebox.server.http.app import create_app
from farebox.server.http.state import STORE, Settings
from farebox.server.ledger.accounts import Channel
from farebox.server.ledger.book import Ledger
from farebox.server.ledger.posting import TopUp
from farebox.server.ledger.top_up_policy import MAX_TOP_UP, TopUpPolicy
from farebox.server.sync.fares import Books
from tests.server.conftest import ALMATY, Clock
from tests.server.operator.conftest import TOKEN, Operator

TOP_UPS = "/api/v1/accounts/{}/top-ups"


async def top_up(
    operator: Operator, token: str, amount: int, key: str, *, channel: str = "app", expect: int
) -> dict[str, Any]:
    body = {"amount": amount, "currency": "KZT", "channel": channel}
    headers = {"Idempotency-Key": key}
    return await operator.call(
        "POST", TOP_UPS.format(token), json=body, headers=headers, expect=expect
    )


async def test_a_top_up_above_the_maximum_is_refused_and_posts_nothing(
    operator: Operator,
) -> None:
    for amount in (MAX_TOP_UP + 1, INT64_MAX, 2**63, 10**30, 0, -1):
        refused = await top_up(operator, "nfc:ab01", amount, f"k{amount}", expect=400)
        assert refused["code"] == "malformed"
        assert "100000.00 KZT (FAREBOX_MAX_TOP_UP)" in refused["detail"]
    await operator.call("GET", "/api/v1/accounts/nfc:ab01", expect=404)
    posted = await top_up(operator, "nfc:ab01", MAX_TOP_UP, "k-max", expect=201)
    assert posted["amount"] == MAX_TOP_UP
    # The channel's clearing account is not filled: the next top-up through it posts.
    await top_up(operator, "nfc:ab02", 50000, "k-next", expect=201)
    account = await operator.call("GET", "/api/v1/accounts/nfc:ab01")
    assert account["balance"] == MAX_TOP_UP


@pytest.fixture
async def unbounded(
    store_url: str, clock: Clock, http: aiohttp.ClientSession
) -> AsyncIterator[Operator]:
    """An operator API that lets one top-up credit as much as a balance can hold."""
    settings = Settings(
        db=store_url, books=Books(ALMATY), operator_token=TOKEN, clock=clock,
        top_ups=TopUpPolicy(INT64_MAX),
    )  # fmt: skip
    app = create_app(settings)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield Operator(str(test_server.make_url("/")), app[STORE], clock, http)
    finally:
        await test_server.close()


async def test_a_balance_that_would_pass_64_bits_is_refused_not_an_internal_error(
    unbounded: Operator,
) -> None:
    await top_up(unbounded, "nfc:ab01", INT64_MAX, "k1", expect=201)
    # The app channel's clearing account is now at -(2**63 - 1): two more units are
    # refused, with nothing posted, and other channels go on.
    refused = await top_up(unbounded, "nfc:ab02", 2, "k2", expect=422)
    assert refused["code"] == "ledger_refused"
    assert "would not fit in 64 bits" in refused["detail"]
    await unbounded.call("GET", "/api/v1/accounts/nfc:ab02", expect=404)
    await top_up(unbounded, "nfc:ab02", 1, "k3", channel="kiosk", expect=201)


async def test_an_amount_past_64_bits_is_refused_by_the_store(ledger: Ledger) -> None:
    huge = TopUp("nfc:ab01", Money(2**63, "KZT"), Channel.APP, "p1", 0)
    with pytest.raises(LedgerError, match="would not fit in 64 bits"):
        await ledger.top_up(huge)
    assert await ledger.account("rider:nfc:ab01") is None


def test_the_command_line_refuses_a_top_up_above_the_maximum(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def topup(amount: str, ref: str) -> int:
        argv = ["account", "topup", "nfc:0a", amount, "--channel", "kiosk", "--ref", ref]
        return main([*argv, "--db", store_url], io.StringIO())

    assert main(["init", "--db", store_url], io.StringIO()) == 0
    assert topup("100000.01", "p1") == 2
    assert "from 1 minor unit to 100000.00 KZT (FAREBOX_MAX_TOP_UP)" in capsys.readouterr().err
    assert topup("100000", "p2") == 0
    monkeypatch.setenv(environment.FAREBOX_MAX_TOP_UP, "50000")
    assert topup("500.01", "p3") == 2
    assert "not 500.01 KZT" in capsys.readouterr().err
    monkeypatch.setenv(environment.FAREBOX_MAX_TOP_UP, "²")
    assert topup("5", "p4") == 2
    assert "FAREBOX_MAX_TOP_UP is a whole number" in capsys.readouterr().err
    out = io.StringIO()
    assert main(["account", "show", "nfc:0a", "--db", store_url], out) == 0
    assert "balance    100000.00 KZT" in out.getvalue()
