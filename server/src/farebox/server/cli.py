"""`farebox-server`: the server's command line.

Every command that touches the books takes `--db URL` (`sqlite:///path` or
`postgresql://...`; FAREBOX_DB by default). Each group of commands is added by one
`add_*_commands` function, so that later groups (the sync server's `run`, `enroll-token`)
join the same parser without touching these. A command sets one of two handlers: `handler`,
a coroutine given the open ledger, or `run`, a plain function for commands that need no
store (`ticket issue`). Either returns the exit status; a `ServerError` or malformed input
becomes a one-line message and status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TextIO

from farebox.protocol.money import Money
from farebox.protocol.tariffs.amounts import parse_amount
from farebox.server import environment as env
from farebox.server.errors import ConfigurationError, ServerError
from farebox.server.ledger.accounts import Channel, rider_account
from farebox.server.ledger.book import Ledger, wall_clock_ms
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.posting import TopUp
from farebox.server.ledger.stoplist import OPERATOR_REASONS, BlockReason
from farebox.server.ledger.store import open_store
from farebox.server.ledger.top_up_policy import TopUpPolicy
from farebox.server.sync_commands import add_sync_commands
from farebox.server.tap_commands import add_tap_commands
from farebox.server.tariff_commands import add_tariff_commands
from farebox.server.ticket_commands import add_ticket_commands

Handler = Callable[[argparse.Namespace, Ledger, TextIO], Awaitable[int]]


def _db_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--db",
        default=None,
        help=f"store URL: sqlite:///path or postgresql://... (default: ${env.FAREBOX_DB})",
    )
    return parent


async def _init(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    version = await ledger.store.migrate()
    print(f"store {ledger.store.url} is at schema version {version}", file=out)
    return 0


async def _backup(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    size = await ledger.store.back_up(args.to)
    print(f"store {ledger.store.url} copied to {args.to} ({size:,} bytes)", file=out)
    return 0


async def _account_show(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    account_id = rider_account(args.token, args.currency).id
    state = await ledger.account(account_id)
    if state is None:
        print(f"no account {account_id}", file=out)
        return 1
    held = Money(state.pending_debits, state.account.currency)
    print(f"account    {account_id}", file=out)
    print(f"balance    {state.balance}", file=out)
    print(f"available  {state.available}  (held {held})", file=out)
    print(f"limit      {Money(state.account.credit_limit, state.account.currency)}", file=out)
    blocks = await ledger.blocks(args.token)
    listed = ", ".join(f"{r}" + (f" ({note})" if note else "") for r, note in blocks) or "no"
    print(f"stoplisted {listed}", file=out)
    for entry in await ledger.statement(account_id, args.limit):
        t = entry.transfer
        signed = t.amount if t.credit == account_id else -t.amount
        other = t.debit if t.credit == account_id else t.credit
        day = t.fare_day.isoformat() if t.fare_day else "-"
        print(f"  #{entry.id:<8} {t.kind.value:<10} {t.phase.value:<7} {signed!s:>14}  "
              f"{day:<10} {other}  {t.key}", file=out)  # fmt: skip
    return 0


async def _account_topup(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    amount = TopUpPolicy.from_environment().check(parse_amount(args.amount, args.currency))
    top_up = TopUp(args.token, amount, Channel(args.channel), args.ref, wall_clock_ms())
    receipt = await ledger.top_up(top_up)
    said = "posted" if receipt.fresh else "already posted"
    print(f"{said}: transfer #{receipt.id} {receipt.key} {amount}", file=out)
    return 0


async def _account_limit(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    limit = parse_amount(args.amount, args.currency)
    await ledger.set_credit_limit(args.token, args.currency, limit.minor)
    print(f"credit limit of {args.token} is {limit}", file=out)
    return 0


async def _card_block(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    version = await ledger.block(args.token, BlockReason(args.reason), args.note)
    print(f"{args.token} blocked ({args.reason}); stoplist version {version}", file=out)
    return 0


async def _card_unblock(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    if args.reason not in {reason for reason, _ in await ledger.blocks(args.token)}:
        print(f"{args.token} has no {args.reason} block; nothing changed", file=out)
        return 1  # a mistyped token must not read as a card released
    version = await ledger.unblock(args.token, BlockReason(args.reason))
    remaining = await ledger.blocks(args.token)
    still = f"; still listed for {', '.join(r for r, _ in remaining)}" if remaining else ""
    print(f"{args.token} unblocked ({args.reason}); stoplist version {version}{still}", file=out)
    return 0


async def _stoplist_version(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    head = await ledger.stoplist_head()
    print(f"version {head.version} checksum {head.checksum.hex()}", file=out)
    return 0


async def _stoplist_size(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    print(await ledger.stoplist_size(), file=out)
    return 0


async def _stoplist_delta(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    delta = await ledger.stoplist_delta(args.since, args.until)
    print(f"from {delta.since} to {delta.version} checksum {delta.checksum.hex()}", file=out)
    for token in delta.added:
        print(f"+ {token}", file=out)
    for token in delta.removed:
        print(f"- {token}", file=out)
    return 0


async def _report_revenue(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    rows = await ledger.revenue(args.day)
    print(f"| carrier | route | revenue {args.day} |\n|---|---|---:|", file=out)
    totals: dict[str, Money] = {}
    for account, amount in rows:
        _, _, carrier, route = account.split(":", 3)
        print(f"| {carrier} | {route} | {amount} |", file=out)
        totals[amount.currency] = totals.get(amount.currency, Money.zero(amount.currency)) + amount
    for total in totals.values():
        print(f"| all | all | {total} |", file=out)
    return 0


async def _ledger_verify(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    problems = await ledger.violations()
    for problem in problems:
        print(f"violation: {problem}", file=out)
    if problems:
        return 1
    print("ledger verified: every invariant holds", file=out)
    return 0


def _token_parser(parent: argparse.ArgumentParser, *, currency: bool = True) -> None:
    parent.add_argument("token", help="card token, e.g. nfc:04a1b2c3")
    if currency:
        parent.add_argument("--currency", default=env.setting(env.FAREBOX_CURRENCY))


def add_ledger_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The operator commands of the ledger: init, account, card, stoplist, report, ledger."""
    db = _db_option()

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, handler: Handler,
        description: str,
    ) -> argparse.ArgumentParser:  # fmt: skip
        parser = group.add_parser(name, parents=[db], help=description, description=description)
        parser.set_defaults(handler=handler)
        return parser

    command(commands, "init", _init, "create the store, or bring its schema up to date")
    backup = command(commands, "backup", _backup, "copy the SQLite store while it serves")
    backup.add_argument("--to", type=Path, required=True, help="the new file")

    account = commands.add_parser("account", help="rider accounts").add_subparsers(required=True)
    show = command(account, "show", _account_show, "balance, stoplist state and statement")
    _token_parser(show)
    show.add_argument("--limit", type=int, default=20, help="statement lines (default 20)")
    topup = command(account, "topup", _account_topup, "credit a rider with a payment")
    _token_parser(topup)
    topup.add_argument("amount", help="in major units, e.g. 500 or 500.50")
    topup.add_argument("--channel", required=True, choices=[c.value for c in Channel])
    topup.add_argument("--ref", required=True, help="the channel's payment id (idempotency)")
    limit = command(account, "limit", _account_limit, "set how far below zero a rider may go")
    _token_parser(limit)
    limit.add_argument("amount", help="in major units")

    card = commands.add_parser("card", help="operator blocks").add_subparsers(required=True)
    reasons = sorted(r.value for r in OPERATOR_REASONS)
    block = command(card, "block", _card_block, "stop-list a token (lost, stolen, fraud...)")
    _token_parser(block, currency=False)
    block.add_argument("--reason", required=True, choices=reasons)
    block.add_argument("--note", default=None)
    unblock = command(card, "unblock", _card_unblock, "lift an operator's block")
    _token_parser(unblock, currency=False)
    unblock.add_argument("--reason", required=True, choices=reasons)

    stoplist = commands.add_parser("stoplist", help="the published stoplist")
    stoplist_commands = stoplist.add_subparsers(required=True)
    command(stoplist_commands, "version", _stoplist_version, "latest version and checksum")
    command(stoplist_commands, "size", _stoplist_size, "how many tokens are listed")
    delta = command(stoplist_commands, "delta", _stoplist_delta, "changes between two versions")
    delta.add_argument("--since", type=int, required=True)
    delta.add_argument("--until", type=int, default=None, help="default: the latest version")

    report = commands.add_parser("report", help="reports").add_subparsers(required=True)
    revenue = command(report, "revenue", _report_revenue, "fare revenue per carrier and route")
    revenue.add_argument("--day", type=date.fromisoformat, required=True, help="YYYY-MM-DD")

    ledger = commands.add_parser("ledger", help="the books").add_subparsers(required=True)
    command(ledger, "verify", _ledger_verify, "check every invariant; non-zero exit if broken")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farebox-server", description="farebox sync server and ledger operations"
    )
    commands = parser.add_subparsers(title="commands", required=True)
    add_ledger_commands(commands)
    add_sync_commands(commands, _db_option())
    add_tap_commands(commands, _db_option())
    add_tariff_commands(commands, _db_option())
    add_ticket_commands(commands)
    return parser


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    url = args.db or env.setting(env.FAREBOX_DB)
    policy = FareDayPolicy.from_environment()
    store = await open_store(url)
    try:
        handler: Handler = args.handler
        if handler is not _init:
            await store.check_schema()
        limit = int(env.setting(env.FAREBOX_CREDIT_LIMIT))
        return await handler(args, Ledger(store, policy, credit_limit=limit), out)
    finally:
        await store.close()


def configure_logging() -> None:
    """Log to standard error, with time, level and source, from `FAREBOX_LOG_LEVEL` up."""
    name = env.setting(env.FAREBOX_LOG_LEVEL).upper()
    level = logging.getLevelNamesMapping().get(name)
    if level is None or name in ("NOTSET", "WARN", "FATAL"):
        raise ConfigurationError(
            f"{env.FAREBOX_LOG_LEVEL} is one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got {name!r}"
        )
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; return its exit status."""
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        configure_logging()
        if hasattr(args, "run"):
            status: int = args.run(args, stream)
            return status
        return asyncio.run(_run(args, stream))
    except (ServerError, ValueError) as error:
        # ValueError here is the operator's input (a malformed token or amount).
        sys.stderr.write(f"farebox-server: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
