"""Every environment variable farebox-server reads, each a documented constant.

Code never spells a variable's name as a string literal elsewhere: it imports the
constant from here, so that `grep` and the documentation test find every one of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

FAREBOX_DB = "FAREBOX_DB"
"""The store URL: `sqlite:///path/to/file.db` (the embedded default) or `postgresql://...`."""

FAREBOX_TIMEZONE = "FAREBOX_TIMEZONE"
"""The operator's IANA time zone, in which fare days are counted (e.g. `Asia/Almaty`)."""

FAREBOX_DAY_BOUNDARY = "FAREBOX_DAY_BOUNDARY"
"""Local time `HH:MM` at which one fare day ends and the next begins (e.g. `03:00`)."""

FAREBOX_CURRENCY = "FAREBOX_CURRENCY"
"""The ISO 4217 currency of new rider accounts and of operator commands (e.g. `KZT`); a
top-up in another is refused."""

FAREBOX_CREDIT_LIMIT = "FAREBOX_CREDIT_LIMIT"
"""Minor units a new rider account may go below zero before it is stop-listed."""

FAREBOX_LISTEN = "FAREBOX_LISTEN"
"""Where `farebox-server run` listens, `HOST:PORT` (e.g. `0.0.0.0:8080`)."""

FAREBOX_CARRIER = "FAREBOX_CARRIER"
"""The carrier whose revenue account receives the fares of every route."""

FAREBOX_OPERATOR_TOKEN = "FAREBOX_OPERATOR_TOKEN"  # noqa: S105 - a variable's name
"""The bearer token of the operator HTTP API; without it that API is closed."""

FAREBOX_SETTLE_EVERY_S = "FAREBOX_SETTLE_EVERY_S"
"""How often, in seconds, `run` settles the closed fare days that are due (default 300)."""

FAREBOX_MAX_TOP_UP = "FAREBOX_MAX_TOP_UP"
"""The most minor units one top-up may credit (default 10000000: 100,000.00 KZT)."""

FAREBOX_LOG_LEVEL = "FAREBOX_LOG_LEVEL"
"""The least severe log level written to standard error: DEBUG, INFO (default), WARNING,
ERROR or CRITICAL."""

DEFAULTS: Mapping[str, str] = {
    FAREBOX_DB: "sqlite:///farebox.db",
    FAREBOX_TIMEZONE: "Asia/Almaty",
    FAREBOX_DAY_BOUNDARY: "03:00",
    FAREBOX_CURRENCY: "KZT",
    FAREBOX_CREDIT_LIMIT: "0",
    FAREBOX_LISTEN: "127.0.0.1:8080",
    FAREBOX_CARRIER: "city",
    FAREBOX_OPERATOR_TOKEN: "",
    FAREBOX_SETTLE_EVERY_S: "300",
    FAREBOX_MAX_TOP_UP: "10000000",
    FAREBOX_LOG_LEVEL: "INFO",
}


def setting(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of one variable from `environ` (the process environment by default)."""
    source = os.environ if environ is None else environ
    return source.get(name) or DEFAULTS[name]
