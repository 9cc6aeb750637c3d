"""`farebox-agent`: enroll a validator, run it, or report its status.

    farebox-agent enroll --server URL --token T [--config agent.toml | --state-dir DIR]
    farebox-agent run --config agent.toml
    farebox-agent status --config agent.toml [--json]

The config path may also come from $FAREBOX_AGENT_CONFIG. A bad config prints every
problem and exits with 78 (EX_CONFIG); the systemd unit does not restart on it. A refused
enrollment exits with 1, a server that cannot be reached with 69 (EX_UNAVAILABLE).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from farebox.agent import environment
from farebox.agent.config import (
    AgentConfig,
    FeedbackKind,
    PinFactory,
    ReaderConfig,
    ReaderKind,
    load_config,
    state_directory,
)
from farebox.agent.errors import ConfigError, EnrollmentError, StoreError, SyncError
from farebox.agent.feedback import Feedback, NoFeedback
from farebox.agent.feedback.console import ConsoleFeedback
from farebox.agent.runtime import Reader, Runtime, wall_ms
from farebox.agent.scripted import ScriptedReader
from farebox.agent.status import gather, render
from farebox.agent.store.state import Store
from farebox.agent.sync.enroll import enroll
from farebox.agent.sync.enrollment import KEY_FILE, read_enrollment
from farebox.agent.sync.service import SyncService
from farebox.agent.systemd import Notifier
from farebox.protocol.keyfile import KeyFileError, load_key

EX_CONFIG = 78
EX_SOFTWARE = 70
EX_UNAVAILABLE = 69
log = logging.getLogger("farebox.agent")


def build_reader(config: ReaderConfig) -> Reader:
    # nfcpy and pyserial are imported only when a reader of theirs is configured: a
    # validator with one scanner should not pay for loading the NFC stack at start.
    if config.kind is ReaderKind.NFC:
        from farebox.agent.readers.nfc import NfcReader

        return NfcReader(config.id, config.target)
    if config.kind is ReaderKind.SCANNER:
        from farebox.agent.readers.scanner import ScannerReader

        return ScannerReader(config.id, config.target, baudrate=config.baudrate)
    return ScriptedReader(config.id, config.target)


def pin_factory(kind: PinFactory) -> Any:
    if kind is PinFactory.LGPIO:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    if kind is PinFactory.RPIGPIO:
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    if kind is PinFactory.NATIVE:
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()
    from gpiozero.pins.mock import MockFactory

    return MockFactory()


def build_feedback(config: AgentConfig) -> Feedback:
    kind = config.feedback.kind
    if kind is FeedbackKind.CONSOLE:
        return ConsoleFeedback()
    if kind is FeedbackKind.NONE:
        return NoFeedback()
    from farebox.agent.feedback.gpio import GpioFeedback

    factory = pin_factory(config.feedback.pin_factory)
    return GpioFeedback(config.feedback, factory, display=ConsoleFeedback())


async def serve(config: AgentConfig, store: Store) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    readers = [build_reader(reader) for reader in config.readers]
    runtime = Runtime(config, store, readers, build_feedback(config), Notifier())
    sync = build_sync(config, store, runtime)
    if sync is not None:
        runtime.expect_server_time()
    await runtime.run(stop, [] if sync is None else [sync.run])


def build_sync(config: AgentConfig, store: Store, runtime: Runtime) -> SyncService | None:
    """The background sync if the device is enrolled; a validator that is not decides offline."""
    directory = config.state.directory
    enrolled = read_enrollment(directory)
    if enrolled is None:
        log.warning("not enrolled: running offline, nothing will be synced")
        return None
    try:
        key = load_key(directory / KEY_FILE)
    except KeyFileError as error:
        raise StoreError(f"enrolled, but the device key is unusable: {error}") from None
    return SyncService(
        config.sync,
        enrolled,
        key,
        store,
        runtime.on_store,
        directory,
        readers=runtime.reader_states,
        on_offset=runtime.clock_measured,
        clock=runtime.clock,
    )


def _config_path(given: str | None) -> Path:
    path = given or os.environ.get(environment.FAREBOX_AGENT_CONFIG)
    if path is None:
        raise ConfigError([f"no config: pass --config or set {environment.FAREBOX_AGENT_CONFIG}"])
    return Path(path)


def run(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args.config))
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        config.state.directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError([f"state.directory {config.state.directory}: {error.strerror}"]) from None
    store = Store.open(
        config.state.database,
        config.device_id,
        lock_timeout_ms=config.state.lock_timeout_ms,
        max_size_bytes=config.state.max_size_bytes,
    )
    asyncio.run(serve(config, store))
    return 0


def enroll_device(args: argparse.Namespace) -> int:
    if args.state_dir is not None:
        directory = Path(args.state_dir)
    else:
        directory = state_directory(_config_path(args.config))
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(levelname)s %(message)s")
    enrolled = enroll(args.server, args.token, directory, force=args.force)
    sys.stdout.write(enrolled.device + "\n")
    return 0


def status(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args.config))
    report = gather(config, wall_ms())
    text = json.dumps(report, indent=2, sort_keys=True) if args.json else render(report)
    sys.stdout.write(text + "\n")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="farebox-agent", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    enroll_cmd = commands.add_parser("enroll", help="enroll with a sync server, once")
    enroll_cmd.add_argument("--server", required=True, help="the sync server's base URL")
    enroll_cmd.add_argument("--token", required=True, help="the operator's one-time token")
    where = enroll_cmd.add_mutually_exclusive_group()
    where.add_argument("--config", help="TOML config file (for its state directory)")
    where.add_argument("--state-dir", help="the state directory, without a config")
    enroll_cmd.add_argument("--force", action="store_true", help="make a new key, enroll again")
    enroll_cmd.set_defaults(handler=enroll_device)
    run_cmd = commands.add_parser("run", help="run the validator service")
    run_cmd.add_argument("--config", help="TOML config file")
    run_cmd.set_defaults(handler=run)
    status_cmd = commands.add_parser("status", help="print versions, journal depth, clock, disk")
    status_cmd.add_argument("--config", help="TOML config file")
    status_cmd.add_argument("--json", action="store_true", help="print JSON")
    status_cmd.set_defaults(handler=status)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as error:
        sys.stderr.write(f"farebox-agent: {error}\n")
        return EX_CONFIG
    except StoreError as error:
        sys.stderr.write(f"farebox-agent: {error}\n")
        return EX_SOFTWARE
    except EnrollmentError as error:
        sys.stderr.write(f"farebox-agent: {error}\n")
        return 1
    except SyncError as error:
        sys.stderr.write(f"farebox-agent: {error}\n")
        return EX_UNAVAILABLE
    except KeyFileError as error:
        sys.stderr.write(f"farebox-agent: {error}\n")
        return EX_SOFTWARE
    return code


if __name__ == "__main__":
    sys.exit(main())
