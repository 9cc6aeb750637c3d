"""`farebox-server run`, `enroll-token`, `device`, `package-key`, `config` and `keyset`.

`run` serves the device API over the store; several `run` processes may share one store,
a PostgreSQL database or an SQLite file (and, with `--reuse-port`, one port). The others
are operator commands over the same store as the ledger's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from farebox.protocol import cbor
from farebox.protocol.enrollment import DeviceKind
from farebox.protocol.packages import PackageKind
from farebox.protocol.record_values import EARLIEST_PLAUSIBLE_MS
from farebox.protocol.tickets.issuers import IssuerKeySet
from farebox.server import environment as env
from farebox.server.collector import tune_collector
from farebox.server.errors import ConfigurationError
from farebox.server.http.app import create_app
from farebox.server.http.state import Settings
from farebox.server.ledger.book import Ledger, wall_clock_ms
from farebox.server.ledger.top_up_policy import TopUpPolicy
from farebox.server.sync import devices, publishing
from farebox.server.tap_commands import books_of

log = logging.getLogger(__name__)
ENROLLMENT_TTL_HOURS = 24
MOST_TTL_HOURS = 24 * 366
"""A token may wait a year for its device at most: one that never expires is a key left
under the mat."""


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _redacted(url: str) -> str:
    """The store URL without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def check_clock(now_ms: int) -> None:
    """ConfigurationError if the system clock cannot be right (before 2024).

    Validators set their clocks by the server's answers, and the server dates every
    record it receives, ends fare days and expires tokens by its own: a server whose clock
    fell back to 1970 would refuse every upload as stale and settle nothing, all quietly.
    """
    if now_ms < EARLIEST_PLAUSIBLE_MS:
        read = datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(timespec="seconds")
        raise ConfigurationError(
            f"the system clock reads {read}, which cannot be right: set it (NTP) and start again"
        )


async def serve(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    check_clock(wall_clock_ms())
    host, port = args.listen
    settings = Settings(
        db=ledger.store.url,
        books=books_of(ledger),
        operator_token=env.setting(env.FAREBOX_OPERATOR_TOKEN) or None,
        settle_every_s=float(env.setting(env.FAREBOX_SETTLE_EVERY_S)),
        top_ups=TopUpPolicy.from_environment(),
    )
    runner = web.AppRunner(create_app(settings, store=ledger.store), access_log=None)
    await runner.setup()
    tune_collector()
    site = web.TCPSite(runner, host, port, reuse_port=args.reuse_port)
    await site.start()
    bound = runner.addresses[0][1]  # the port the system chose when asked for port 0
    out.write(
        f"farebox-server listening on http://{host}:{bound} over {_redacted(ledger.store.url)}\n"
    )
    out.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


def _hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        hours = 0.0
    if not 0 < hours <= MOST_TTL_HOURS:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"hours is more than 0 and at most {MOST_TTL_HOURS}, got {text!r}"
        )
    return hours


async def enroll_token(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    now, ttl = wall_clock_ms(), int(args.hours * 3_600_000)
    kind = DeviceKind(args.kind)
    token = await ledger.store.run(devices.create_token, args.name, kind, now, ttl)
    out.write(f"{token}\n")
    return 0


async def device_list(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    found = await ledger.store.run(devices.devices)
    rows = [
        {
            "id": d.id, "kind": d.kind.value, "key_id": d.key.key_id.hex(),
            "cursor": d.cursor.seq, "synced_ms": d.synced_ms, "revoked": d.revoked,
            "refusals": d.refusals,
        }
        for d in found
    ]  # fmt: skip
    out.write(json.dumps(rows, indent=2) + "\n")
    return 0


async def device_revoke(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    now = wall_clock_ms()
    revoked = await ledger.store.run(devices.revoke, args.device, now)
    out.write(f"{revoked.id} revoked; its {revoked.cursor.seq} synced records stay\n")
    return 0


async def rotate_package_key(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    now = wall_clock_ms()
    key = await ledger.store.run(publishing.rotate_key, now)
    out.write(
        f"package key {key.key_id.hex()} signs from now on; enrolled devices learn it from"
        " the previous key's endorsement when they next fetch packages\n"
    )
    return 0


def _read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigurationError(f"cannot read {path}: {error}") from None


async def _publish(ledger: Ledger, kind: PackageKind, payload: bytes, out: TextIO) -> int:
    now = wall_clock_ms()
    package = await ledger.store.run(publishing.publish, kind, payload, now)
    out.write(f"{kind} package {package.version} published ({len(payload)} bytes)\n")
    return 0


async def config_publish(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    document = _read_toml(args.file)
    try:
        payload = cbor.encode(document)  # type: ignore[arg-type]
    except TypeError as error:
        raise ConfigurationError(f"{args.file}: {error}") from None
    return await _publish(ledger, PackageKind.CONFIG, payload, out)


async def keyset_publish(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    try:
        payload = args.file.read_bytes()
        IssuerKeySet.from_wire(cbor.decode(payload, "issuer keys"))  # refuse a bad set here
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"{args.file}: {error}") from None
    return await _publish(ledger, PackageKind.KEYSET, payload, out)


def add_sync_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    db: argparse.ArgumentParser,
) -> None:
    """run, enroll-token, device list/revoke, package-key rotate, config/keyset publish."""
    run = commands.add_parser("run", parents=[db], help="serve the device API")
    run.add_argument(
        "--listen",
        type=_listen,
        default=_listen(env.setting(env.FAREBOX_LISTEN)),
        help=f"HOST:PORT (default ${env.FAREBOX_LISTEN} or 127.0.0.1:8080)",
    )
    run.add_argument(
        "--reuse-port", action="store_true", help="let several processes share the port"
    )
    run.set_defaults(handler=serve)

    token = commands.add_parser("enroll-token", parents=[db], help="a one-time enrollment token")
    token.add_argument("--name", required=True, help="the device id, e.g. bus-017")
    token.add_argument("--kind", required=True, choices=[k.value for k in DeviceKind])
    token.add_argument(
        "--hours",
        type=_hours,
        default=ENROLLMENT_TTL_HOURS,
        help=f"how long it stays valid (default {ENROLLMENT_TTL_HOURS})",
    )
    token.set_defaults(handler=enroll_token)

    device = commands.add_parser("device", help="enrolled devices").add_subparsers(required=True)
    device.add_parser("list", parents=[db], help="devices, cursors, last sync").set_defaults(
        handler=device_list
    )
    revoke = device.add_parser("revoke", parents=[db], help="refuse a device from now on")
    revoke.add_argument("device")
    revoke.set_defaults(handler=device_revoke)

    key = commands.add_parser("package-key", help="the keys that sign packages")
    key.add_subparsers(required=True).add_parser(
        "rotate", parents=[db], help="make a new signing key; older keys stay trusted"
    ).set_defaults(handler=rotate_package_key)

    for name, handler, what in (
        ("config", config_publish, "a device config TOML file (e.g. in_service = true)"),
        ("keyset", keyset_publish, "a CBOR issuer key set (farebox.protocol.tickets.issuers)"),
    ):
        group = commands.add_parser(name, help=f"{name} packages").add_subparsers(required=True)
        publish = group.add_parser("publish", parents=[db], help=f"publish {what}")
        publish.add_argument("file", type=Path)
        publish.set_defaults(handler=handler)
