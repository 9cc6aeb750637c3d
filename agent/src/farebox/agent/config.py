"""The agent's configuration: a TOML file, environment overrides, checked at start.

Every problem is collected and reported together (ConfigError), so an installer fixes a
bad file in one pass; the CLI then exits with 78 (EX_CONFIG), which the systemd unit
lists in RestartPreventExitStatus so that a bad config does not loop. docs/agent.md
describes every key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from farebox.agent import environment
from farebox.agent.config_table import Table
from farebox.agent.errors import ConfigError, StoreError
from farebox.agent.policy import (
    HOUR_MS,
    MINUTE_MS,
    ClockPolicy,
    DeviceType,
    Policy,
    StalePolicy,
)
from farebox.agent.sync.enrollment import read_enrollment
from farebox.agent.sync.settings import SyncConfig, parse_sync
from farebox.protocol.errors import InvalidValueError
from farebox.protocol.records import Location, MediaKind, TapType, check_device_id

DAY_MS = 24 * HOUR_MS
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class FeedbackKind(StrEnum):
    CONSOLE = "console"
    GPIO = "gpio"
    NONE = "none"


class PinFactory(StrEnum):
    """gpiozero pin libraries: lgpio (Raspberry Pi OS bookworm), rpigpio, native, mock."""

    LGPIO = "lgpio"
    RPIGPIO = "rpigpio"
    NATIVE = "native"
    MOCK = "mock"


class ReaderKind(StrEnum):
    NFC = "nfc"
    SCANNER = "scanner"
    SCRIPTED = "scripted"


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    """One reader: `target` is an nfcpy path, a pyserial URL, or a script file ('-': stdin)."""

    kind: ReaderKind
    id: str
    target: str
    baudrate: int = 9600


@dataclass(frozen=True, slots=True)
class FeedbackConfig:
    kind: FeedbackKind = FeedbackKind.CONSOLE
    pin_factory: PinFactory = PinFactory.LGPIO
    green_pin: int | None = None
    red_pin: int | None = None
    buzzer_pin: int | None = None
    relay_pin: int | None = None
    relay_pulse_ms: int = 800


@dataclass(frozen=True, slots=True)
class StateConfig:
    directory: Path
    max_size_bytes: int | None = None
    lock_timeout_ms: int = 2000
    retention_ms: int = 7 * DAY_MS
    history_ms: int = 8 * DAY_MS

    @property
    def database(self) -> Path:
        return self.directory / "agent.db"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device_id: str
    state: StateConfig
    policy: Policy = field(default_factory=Policy)
    location: Location = field(default_factory=Location)
    direction: str | None = None
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    readers: tuple[ReaderConfig, ...] = ()
    probe_interval_s: float = 2.0
    log_level: str = "INFO"
    sync: SyncConfig = field(default_factory=SyncConfig)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read `path`, apply the environment's overrides, and check everything."""
    environ = os.environ if environ is None else environ
    return parse_config(apply_overrides(_read(path), environ), environ)


def _read(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError([f"cannot read {path}: {error.strerror}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError([f"{path} is not valid TOML: {error}"]) from None


def apply_overrides(document: dict[str, object], environ: Mapping[str, str]) -> dict[str, object]:
    merged = dict(document)
    for variable, (section, key) in environment.OVERRIDES.items():
        if variable in environ:
            table = merged.get(section)
            table = dict(table) if isinstance(table, Mapping) else {}
            table[key] = environ[variable]
            merged[section] = table
    return merged


def parse_config(document: Mapping[str, object], environ: Mapping[str, str]) -> AgentConfig:
    problems: list[str] = []
    sections = {
        "device",
        "location",
        "state",
        "policy",
        "fares",
        "feedback",
        "readers",
        "runtime",
        "log",
        "sync",
    }
    problems.extend(f"unknown section [{k}]" for k in sorted(set(document) - sections))
    device = Table(document.get("device", {}), "device", problems, {"id", "type", "tap_type"})
    device_id = device.text("id")
    if device_id is not None:
        try:
            check_device_id(device_id)
        except InvalidValueError as error:
            problems.append(f"device.id: {error}")
    device_type = device.choice("type", DeviceType, DeviceType.BUS)
    policy = _policy(document, device, device_type, problems)
    where = Table(
        document.get("location", {}),
        "location",
        problems,
        {"route", "vehicle", "stop", "direction"},
    )
    location = Location()
    try:
        location = Location(where.text("route"), where.text("vehicle"), where.text("stop"))
    except InvalidValueError as error:
        problems.append(f"location: {error}")
    state = _state(document, environ, problems)
    device_id = _enrolled_id(device_id, state.directory, problems)
    feedback = _feedback(document, problems)
    readers = _readers(document.get("readers", []), problems)
    runtime = Table(document.get("runtime", {}), "runtime", problems, {"probe_interval_s"})
    probe = runtime.number("probe_interval_s", 2.0, least=0.05)
    log = Table(document.get("log", {}), "log", problems, {"level"})
    level = (log.text("level", "INFO") or "INFO").upper()
    if level not in LOG_LEVELS:
        problems.append(f"log.level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    sync = parse_sync(document, problems)
    if problems or device_id is None:
        raise ConfigError(problems)
    return AgentConfig(
        device_id,
        state,
        policy,
        location,
        where.text("direction"),
        feedback,
        readers,
        probe,
        level,
        sync,
    )


def _enrolled_id(configured: str | None, directory: Path, problems: list[str]) -> str | None:
    """The device id: the configured one, else the one the server gave at enrollment."""
    try:
        enrolled = read_enrollment(directory)
    except StoreError as error:
        problems.append(str(error))
        return configured
    if enrolled is None:
        if configured is None:
            problems.append("device.id is required (or enroll first: farebox-agent enroll)")
        return configured
    if configured is not None and configured != enrolled.device:
        problems.append(
            f"device.id {configured!r} differs from the enrolled device {enrolled.device!r}"
        )
    return enrolled.device


def state_directory(path: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Only the state directory of the config at `path` (enrollment needs nothing else)."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    state = _state(apply_overrides(_read(path), environ), environ, problems)
    if problems:
        raise ConfigError(problems)
    return state.directory


def _policy(
    document: Mapping[str, object], device: Table, device_type: DeviceType, problems: list[str]
) -> Policy:
    base = Policy.for_device(device_type)
    known = {
        "retap_window_s",
        "passback_minutes",
        "clock",
        "max_drift_s",
        "stoplist_max_age_hours",
        "stale_stoplist",
    }
    table = Table(document.get("policy", {}), "policy", problems, known)
    fares = Table(document.get("fares", {}), "fares", problems, {"nfc_media", "qr_media"})
    media = tuple(
        (kind, name)
        for kind, name in (
            (MediaKind.NFC, fares.text("nfc_media")),
            (MediaKind.QR, fares.text("qr_media")),
        )
        if name is not None
    )
    return Policy(
        device_type=device_type,
        tap_type=device.choice("tap_type", TapType, base.tap_type),
        retap_window_ms=int(table.number("retap_window_s", base.retap_window_ms / 1000) * 1000),
        passback_ms=int(table.number("passback_minutes", base.passback_ms / MINUTE_MS) * MINUTE_MS),
        clock=table.choice("clock", ClockPolicy, base.clock),
        max_drift_ms=int(table.number("max_drift_s", base.max_drift_ms / 1000) * 1000),
        stoplist_max_age_ms=int(
            table.number("stoplist_max_age_hours", base.stoplist_max_age_ms / HOUR_MS) * HOUR_MS
        ),
        stale=table.choice("stale_stoplist", StalePolicy, base.stale),
        fare_media=media,
    )


def _state(
    document: Mapping[str, object], environ: Mapping[str, str], problems: list[str]
) -> StateConfig:
    known = {"directory", "max_size_mb", "lock_timeout_ms", "retention_days", "history_days"}
    table = Table(document.get("state", {}), "state", problems, known)
    directory = table.text("directory") or environ.get(environment.STATE_DIRECTORY)
    if directory is None:
        problems.append("state.directory is required (or run under systemd with StateDirectory=)")
        directory = "."
    size = table.data.get("max_size_mb")
    return StateConfig(
        directory=Path(directory),
        max_size_bytes=None
        if size is None
        else int(table.number("max_size_mb", 0, least=0.1) * 2**20),
        lock_timeout_ms=int(table.number("lock_timeout_ms", 2000, least=1)),
        retention_ms=int(table.number("retention_days", 7) * DAY_MS),
        history_ms=int(table.number("history_days", 8, least=1) * DAY_MS),
    )


def _feedback(document: Mapping[str, object], problems: list[str]) -> FeedbackConfig:
    known = {
        "kind",
        "pin_factory",
        "green_pin",
        "red_pin",
        "buzzer_pin",
        "relay_pin",
        "relay_pulse_ms",
    }
    table = Table(document.get("feedback", {}), "feedback", problems, known)
    config = FeedbackConfig(
        kind=table.choice("kind", FeedbackKind, FeedbackKind.CONSOLE),
        pin_factory=table.choice("pin_factory", PinFactory, PinFactory.LGPIO),
        green_pin=table.pin("green_pin"),
        red_pin=table.pin("red_pin"),
        buzzer_pin=table.pin("buzzer_pin"),
        relay_pin=table.pin("relay_pin"),
        relay_pulse_ms=int(table.number("relay_pulse_ms", 800, least=1)),
    )
    if config.kind is FeedbackKind.GPIO and (config.green_pin is None or config.red_pin is None):
        problems.append("feedback.kind = 'gpio' needs green_pin and red_pin")
    return config


def _readers(value: object, problems: list[str]) -> tuple[ReaderConfig, ...]:
    if not isinstance(value, list):
        problems.append("[[readers]] must be an array of tables")
        return ()
    readers = []
    for index, item in enumerate(value):
        table = Table(item, f"readers[{index}]", problems, {"kind", "id", "target", "baudrate"})
        kind = table.choice("kind", ReaderKind, ReaderKind.NFC)
        target = table.text("target")
        if target is None:
            problems.append(f"readers[{index}].target is required")
            continue
        reader_id = table.text("id", f"{kind.value}-{index}") or f"{kind.value}-{index}"
        baudrate = int(table.number("baudrate", 9600, least=1))
        readers.append(ReaderConfig(kind, reader_id, target, baudrate))
    ids = [r.id for r in readers]
    problems.extend(
        f"reader id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})
    )
    return tuple(readers)
