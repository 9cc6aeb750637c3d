"""The operator API: JSON under /api/v1/, thin handlers over the ledger and the sync core.

Every route requires `Authorization: Bearer <FAREBOX_OPERATOR_TOKEN>`, compared in
constant time; with no token configured the API is closed and every request is refused
with the same 401 problem. Device keys play no part here, and the operator token opens
nothing of the device API.
"""

from __future__ import annotations

import functools
import hmac
import re
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from farebox.protocol.money import Money
from farebox.protocol.packages import PackageKind
from farebox.protocol.tariffs import load_tariff
from farebox.protocol.tariffs.errors import InvalidTariffError
from farebox.protocol.tariffs.wire import encode_tariff
from farebox.protocol.wire import whole_number
from farebox.server.errors import ConfigurationError
from farebox.server.http import operator_views as views
from farebox.server.http.problems import Handler
from farebox.server.http.state import LEDGER, METRICS, SETTINGS, STORE
from farebox.server.ledger.accounts import RIDER_PREFIX, Channel, check_name
from farebox.server.ledger.posting import TopUp
from farebox.server.ledger.stoplist import BlockReason
from farebox.server.ledger.tariff_rater import refuse_unratable
from farebox.server.sync import devices, publishing, reports
from farebox.server.sync.errors import (
    AccountNotFoundError,
    MalformedRequestError,
    OperatorAuthError,
    TariffRefusedError,
)

PREFIX = "/api/v1"
IDEMPOTENCY_KEY = "Idempotency-Key"
# The key becomes part of the top-up's ledger key (`top_up:<channel>:<key>`), which is
# printable ASCII without spaces.
_IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,128}")
STATEMENT_LINES = 50
ALERTS = 100
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# From 1970, where UTC milliseconds start, to two days before the calendar ends, so that
# a day's end (the next day's boundary, local time in any zone) is a datetime in UTC.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date.max - timedelta(days=2)


def _authorize(request: web.Request) -> None:
    expected = request.app[SETTINGS].operator_token
    if not expected:
        raise OperatorAuthError("the operator API is closed: no operator token is configured")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest takes as long for any wrong token of a length as for another.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise OperatorAuthError("a valid operator bearer token is required")


def _operator(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def authorized(request: web.Request) -> web.StreamResponse:
        _authorize(request)
        return await handler(request)

    return authorized


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise MalformedRequestError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise MalformedRequestError("the body is a JSON object")
    return body


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedRequestError(f"{name!r} is a non-empty string")
    return value


def _token(request: web.Request) -> str:
    token = request.match_info["token"]
    try:
        return check_name(token, "token")
    except ValueError as error:
        raise MalformedRequestError(str(error)) from None


def _query_int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = whole_number(raw, 10_000)
    if not value:
        raise MalformedRequestError(f"{name} is a whole number from 1 to 10000, got {raw!r}")
    return value


def _day(request: web.Request) -> date:
    """The `day` query parameter, by default the fare day in progress."""
    raw = request.query.get("day")
    if raw is None:
        return request.app[SETTINGS].books.policy.day_of(request.app[SETTINGS].clock())
    try:
        day = date.fromisoformat(raw) if _DAY.fullmatch(raw) else None
    except ValueError:  # a month or day out of range
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise MalformedRequestError(
            f"day is a date YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY}, got {raw!r}"
        )
    return day


async def list_devices(request: web.Request) -> web.Response:
    statuses = await request.app[STORE].read(reports.device_statuses)
    return web.json_response({"devices": [views.device_status(s) for s in statuses]})


async def revoke_device(request: web.Request) -> web.Response:
    device_id, now = request.match_info["device"], request.app[SETTINGS].clock()
    found = await request.app[STORE].run(devices.revoke, device_id, now)
    # `revoke` answers the device as it was; one revoked before keeps its first time.
    revoked = found if found.revoked else replace(found, revoked_ms=now)
    return web.json_response(views.device(revoked))


async def show_account(request: web.Request) -> web.Response:
    ledger, token = request.app[LEDGER], _token(request)
    account_id = f"{RIDER_PREFIX}{token}"
    state = await ledger.account(account_id)
    if state is None:
        raise AccountNotFoundError(f"no account {account_id}")
    lines = await ledger.statement(account_id, _query_int(request, "limit", STATEMENT_LINES))
    document = views.account(state, await ledger.blocks(token))
    document["statement"] = [views.statement_line(account_id, entry) for entry in lines]
    return web.json_response(document)


async def top_up(request: web.Request) -> web.Response:
    key = request.headers.get(IDEMPOTENCY_KEY, "")
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise MalformedRequestError(
            f"a top-up needs an {IDEMPOTENCY_KEY} header of 1-128 printable characters",
            "idempotency_key",
        )
    body = await _body(request)
    amount, currency, channel = body.get("amount"), _text(body, "currency"), _text(body, "channel")
    if type(amount) is not int:
        raise MalformedRequestError("'amount' is a whole number of minor units")
    try:
        money = request.app[SETTINGS].top_ups.check(Money(amount, currency))
        paid = TopUp(_token(request), money, Channel(channel), key, request.app[SETTINGS].clock())
    except ValueError as error:
        raise MalformedRequestError(str(error)) from None
    # The ledger keys a top-up by channel and payment id: the same key with the same
    # content answers the first posting; with other content it is a 409 conflict.
    receipt = await request.app[LEDGER].top_up(paid)
    request.app[METRICS].postings["top_up"] += receipt.fresh
    return web.json_response(views.receipt(receipt, money), status=201 if receipt.fresh else 200)


def _reason(body: dict[str, Any]) -> BlockReason:
    reason = _text(body, "reason")
    try:
        return BlockReason(reason)
    except ValueError:
        raise MalformedRequestError(f"unknown block reason {reason!r}") from None


async def block_card(request: web.Request) -> web.Response:
    ledger, token, body = request.app[LEDGER], _token(request), await _body(request)
    note = _text(body, "note") if "note" in body else None
    version = await ledger.block(token, _reason(body), note)
    return await _card(request, token, version)


async def unblock_card(request: web.Request) -> web.Response:
    ledger, token, body = request.app[LEDGER], _token(request), await _body(request)
    version = await ledger.unblock(token, _reason(body))
    return await _card(request, token, version)


async def _card(request: web.Request, token: str, version: int) -> web.Response:
    blocks = views.block_list(await request.app[LEDGER].blocks(token))
    return web.json_response({"token": token, "stoplist_version": version, "blocks": blocks})


async def list_tariffs(request: web.Request) -> web.Response:
    published = await request.app[STORE].read(reports.publications, PackageKind.TARIFF)
    return web.json_response({"tariffs": [views.publication(p) for p in published]})


async def publish_tariff(request: web.Request) -> web.Response:
    try:
        tariff = load_tariff((await request.read()).decode("utf-8"))
        # Settlement rates with the published tariff, so one whose fare days or currency
        # are not the ledger's is refused now rather than at the first settlement.
        settings = request.app[SETTINGS]
        refuse_unratable(tariff, settings.books.policy, settings.top_ups.currency)
    except UnicodeDecodeError:
        raise MalformedRequestError("a tariff is UTF-8 TOML text") from None
    except (InvalidTariffError, ConfigurationError) as error:
        raise TariffRefusedError(str(error)) from None
    payload, now = encode_tariff(tariff), request.app[SETTINGS].clock()
    package = await request.app[STORE].run(publishing.publish, PackageKind.TARIFF, payload, now)
    document = {"id": tariff.id, "version": package.version, "bytes": len(payload)}
    return web.json_response(document, status=201)


async def show_stoplist(request: web.Request) -> web.Response:
    ledger = request.app[LEDGER]
    head, size = await ledger.stoplist_head(), await ledger.stoplist_size()
    return web.json_response(views.stoplist(head, size))


async def revenue_report(request: web.Request) -> web.Response:
    day = _day(request)
    rows = await request.app[LEDGER].revenue(day)
    lines = [views.revenue_line(account_id, amount) for account_id, amount in rows]
    return web.json_response({"day": day.isoformat(), "revenue": lines})


async def taps_report(request: web.Request) -> web.Response:
    day, policy = _day(request), request.app[SETTINGS].books.policy
    start, end = policy.closes_at_ms(day - timedelta(days=1)), policy.closes_at_ms(day)
    per_minute = await request.app[STORE].read(reports.records_per_minute, start, end)
    minutes = [{"minute_ms": m, "taps": n} for m, n in per_minute]
    return web.json_response({"day": day.isoformat(), "start_ms": start, "minutes": minutes})


async def sync_lag_report(request: web.Request) -> web.Response:
    now = request.app[SETTINGS].clock()
    statuses = await request.app[STORE].read(reports.device_statuses)
    lags = [views.sync_lag(lag) for lag in reports.sync_lag(statuses, now)]
    return web.json_response({"now_ms": now, "devices": lags})


async def list_ticket_alerts(request: web.Request) -> web.Response:
    limit = _query_int(request, "limit", ALERTS)
    alerts = await request.app[STORE].read(reports.ticket_alerts, limit)
    return web.json_response({"alerts": [views.ticket_alert(a) for a in alerts]})


def add_routes(app: web.Application) -> None:
    routes = (
        ("GET", "/devices", list_devices),
        ("POST", "/devices/{device}/revoke", revoke_device),
        ("GET", "/accounts/{token}", show_account),
        ("POST", "/accounts/{token}/top-ups", top_up),
        ("POST", "/cards/{token}/block", block_card),
        ("POST", "/cards/{token}/unblock", unblock_card),
        ("GET", "/tariffs", list_tariffs),
        ("POST", "/tariffs", publish_tariff),
        ("GET", "/stoplist", show_stoplist),
        ("GET", "/reports/revenue", revenue_report),
        ("GET", "/reports/taps-per-minute", taps_report),
        ("GET", "/reports/sync-lag", sync_lag_report),
        ("GET", "/ticket-alerts", list_ticket_alerts),
    )
    for method, path, handler in routes:
        app.router.add_route(method, f"{PREFIX}{path}", _operator(handler))
