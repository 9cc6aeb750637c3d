"""`farebox-sim`: the simulators' command line. Each command lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from farebox.simulators import card, demo, scanner


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farebox-sim", description="Simulated cards, scanners, fleets and load for farebox."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.add_parser(commands)
    card.add_parser(commands)
    scanner.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.handler(args, sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(main())
