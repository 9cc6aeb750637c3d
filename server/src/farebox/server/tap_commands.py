"""`farebox-server taps list` and `taps repost`: the taps set aside, and posting them.

A batch is taken even when the ledger cannot post some of its accepted taps (a route or
token it cannot name, a rider account of another currency): their records are stored and
the taps set aside, each with its reason, so that no tap holds up its device's chain
(docs/server.md). `taps list` shows them; `taps repost`, once the cause is mended (a
carrier setting, a newer server), posts each one once and lists what is still refused.
"""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from farebox.protocol.wire import whole_number
from farebox.server import environment as env
from farebox.server.ledger.accounts import KnownAccounts
from farebox.server.ledger.book import Ledger, wall_clock_ms
from farebox.server.sync.fares import Books, Carriers
from farebox.server.sync.set_aside import repost, set_aside_count, set_aside_taps

LISTED = 1000


def books_of(ledger: Ledger) -> Books:
    """What fares are posted with, from the ledger's settings and the environment."""
    carriers = Carriers(default=env.setting(env.FAREBOX_CARRIER))
    return Books(ledger.policy, ledger.credit_limit, carriers)


async def taps_list(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    found = await ledger.store.read(set_aside_taps, args.limit)
    rows = [
        {"device": device, "seq": seq, "reason": reason, "noted_ms": noted}
        for device, seq, reason, noted in found
    ]
    out.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    return 0


async def taps_repost(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    posted = await repost(ledger.store, books_of(ledger), KnownAccounts(), wall_clock_ms())
    left = await ledger.store.read(set_aside_count)
    out.write(f"{posted} taps posted; {left} still set aside (see taps list)\n")
    return 1 if left else 0


def _count(value: str) -> int:
    count = whole_number(value, LISTED)
    if not count:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {LISTED}, got {value!r}")
    return count


def add_tap_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    db: argparse.ArgumentParser,
) -> None:
    """The `taps` group: `taps list`, `taps repost`."""
    group = commands.add_parser("taps", help="taps set aside, not posted")
    taps = group.add_subparsers(required=True)
    listing = taps.add_parser("list", parents=[db], help="the taps set aside, with reasons")
    listing.add_argument("--limit", type=_count, default=LISTED, help=f"at most (default {LISTED})")
    listing.set_defaults(handler=taps_list)
    posting = taps.add_parser("repost", parents=[db], help="post the taps set aside, once")
    posting.set_defaults(handler=taps_repost)
