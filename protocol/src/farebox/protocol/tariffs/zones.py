"""Time zones read from the `tzdata` package that farebox-protocol depends on, never the host's.

A fare day and a timeframe are local times, so a validator and the server must agree on
every zone's rules. `zoneinfo.ZoneInfo(name)` prefers the operating system's database,
whose release differs between a validator image and a server (Asia/Almaty moved from
UTC+6 to UTC+5 in tzdata 2024a): two hosts would then put one tap in different fare days.
Every zone the engine uses comes from here instead, so the same farebox-protocol install
gives the same local times everywhere.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from zoneinfo import ZoneInfo

from farebox.protocol.errors import InvalidValueError


@cache
def _names() -> frozenset[str]:
    # the package lists its zones: only a listed name becomes a resource path
    listing = files("tzdata").joinpath("zones").read_text(encoding="ascii")
    return frozenset(listing.split())


@cache
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` ("Asia/Almaty") from the tzdata package; unknown names refused."""
    if name not in _names():
        raise InvalidValueError(f"unknown time zone {name!r}")
    with files("tzdata.zoneinfo").joinpath(*name.split("/")).open("rb") as data:
        return ZoneInfo.from_file(data, key=name)
