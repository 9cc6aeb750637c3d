"""`farebox-server tariff`: check, quote and publish tariffs.

`check` and `quote` need no store (they run as `args.run(args, out)`); `publish` signs
the tariff as the next tariff package that validators fetch. A tariff is a native TOML
file or a GTFS feed directory (its Fares v2 files, routes, stops and agency).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TextIO

from farebox.protocol.packages import PackageKind
from farebox.protocol.tariffs import import_gtfs, load_tariff, rate
from farebox.protocol.tariffs.errors import InvalidTariffError, NoFareError
from farebox.protocol.tariffs.journey_json import fare_to_json, read_journey
from farebox.protocol.tariffs.tariff import Tariff
from farebox.protocol.tariffs.wire import encode_tariff
from farebox.server import environment as env
from farebox.server.errors import ConfigurationError
from farebox.server.ledger.book import Ledger, wall_clock_ms
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.tariff_rater import refuse_unratable
from farebox.server.sync import publishing


def read_tariff(path: Path) -> Tariff:
    """The tariff in a native TOML file or a GTFS feed directory, every problem listed; a
    feed's fare days start at the ledger's boundary (FAREBOX_DAY_BOUNDARY)."""
    try:
        if path.is_dir():
            files = {p.name: p.read_text(encoding="utf-8") for p in path.glob("*.txt")}
            start = FareDayPolicy.from_environment().start_s
            return import_gtfs(files, tariff_id=path.name, fare_day_start=start)
        return load_tariff(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None
    except InvalidTariffError as error:
        problems = "\n  ".join(error.problems)
        raise ConfigurationError(f"{path} is not a valid tariff:\n  {problems}") from None


def _source(args: argparse.Namespace) -> Path:
    path: Path = args.gtfs or args.tariff or args.path
    return path


def check(args: argparse.Namespace, out: TextIO) -> int:
    tariff = read_tariff(_source(args))
    out.write(json.dumps(tariff.summary(), indent=2, sort_keys=True, default=str) + "\n")
    return 0


def quote(args: argparse.Namespace, out: TextIO) -> int:
    tariff = read_tariff(_source(args))
    try:
        rider, legs = read_journey(Path(args.journey).read_text(encoding="utf-8"), tariff)
        fare = rate(tariff, rider, legs)
    except OSError as error:
        raise ConfigurationError(f"cannot read {args.journey}: {error.strerror}") from None
    except NoFareError as error:
        raise ConfigurationError(f"no fare: {error}") from None
    out.write(json.dumps(fare_to_json(fare), sort_keys=True) + "\n")
    return 0


async def publish(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    tariff = read_tariff(_source(args))
    # As the operator API does: settlement could not rate days by another's fare days.
    refuse_unratable(tariff, ledger.policy, env.setting(env.FAREBOX_CURRENCY))
    payload = encode_tariff(tariff)
    now = wall_clock_ms()
    package = await ledger.store.run(publishing.publish, PackageKind.TARIFF, payload, now)
    out.write(f"tariff {tariff.summary().get('id', '')} published as tariff package "
              f"{package.version} ({len(payload)} bytes)\n")  # fmt: skip
    return 0


def add_tariff_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    db: argparse.ArgumentParser,
) -> None:
    """The `tariff` group: check, quote (no store) and publish (takes `--db`)."""
    group = commands.add_parser("tariff", help="tariffs").add_subparsers(required=True)

    def source(parser: argparse.ArgumentParser) -> None:
        given = parser.add_mutually_exclusive_group(required=True)
        given.add_argument("--tariff", type=Path, help="a native tariff file (TOML)")
        given.add_argument("--gtfs", type=Path, help="a GTFS feed directory")

    checking = group.add_parser("check", help="validate and summarise a tariff")
    checking.add_argument("path", type=Path, nargs="?", help="tariff file or GTFS directory")
    checking.set_defaults(run=check, tariff=None, gtfs=None)
    quoting = group.add_parser("quote", help="price a journey (JSON) and print the fare")
    source(quoting)
    quoting.add_argument("--journey", required=True, help="JOURNEY.json (see docs/tariffs.md)")
    quoting.set_defaults(run=quote, path=None)
    publishing_parser = group.add_parser(
        "publish", parents=[db], help="sign a tariff as the next package for validators"
    )
    source(publishing_parser)
    publishing_parser.set_defaults(handler=publish, path=None)
