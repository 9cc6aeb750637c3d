"""Configuration: defaults per device type, environment overrides, every problem listed,
exit code 78; the CLI's status; every environment variable and command documented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farebox.agent import environment
from farebox.agent.cli import EX_CONFIG, main
from farebox.agent.config import FeedbackKind, ReaderKind, load_config, parse_config
from farebox.agent.errors import ConfigError
from farebox.agent.policy import MINUTE_MS, ClockPolicy, DeviceType, StalePolicy
from farebox.agent.store.schema import MIGRATIONS
from farebox.agent.store.state import Store
from farebox.protocol.records import Location, MediaKind, TapType
from tests.agent.older_schema import database_before

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "packaging" / "config" / "agent.toml"
DOCS = ROOT / "docs" / "agent.md"


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLE, {})
    assert config.device_id == "bus-017"
    assert config.location == Location(route="12", vehicle="bus-017", stop="abay-ave")
    assert config.readers[0].kind is ReaderKind.NFC


def test_defaults_by_device_type(tmp_path: Path) -> None:
    bus = parse_config({"device": {"id": "bus-1"}, "state": {"directory": "x"}}, {})
    assert (bus.policy.device_type, bus.policy.passback_ms, bus.policy.tap_type) == (
        DeviceType.BUS,
        0,
        TapType.SINGLE,
    )
    assert bus.policy.retap_window_ms == MINUTE_MS
    gate = parse_config(
        {"device": {"id": "gate-1", "type": "turnstile"}, "state": {"directory": "x"}}, {}
    )
    assert (gate.policy.passback_ms, gate.policy.tap_type) == (10 * MINUTE_MS, TapType.ON)
    assert gate.feedback.kind is FeedbackKind.CONSOLE


def test_policy_and_fare_media_keys() -> None:
    config = parse_config(
        {
            "device": {"id": "gate-1", "type": "turnstile", "tap_type": "off"},
            "state": {"directory": "x"},
            "policy": {
                "retap_window_s": 30,
                "passback_minutes": 5,
                "clock": "accept_flagged",
                "max_drift_s": 90,
                "stoplist_max_age_hours": 6,
                "stale_stoplist": "deny_unknown",
            },
            "fares": {"nfc_media": "card", "qr_media": "qr"},
        },
        {},
    )
    policy = config.policy
    assert (policy.tap_type, policy.retap_window_ms, policy.passback_ms) == (
        TapType.OFF,
        30_000,
        5 * MINUTE_MS,
    )
    assert (policy.clock, policy.max_drift_ms, policy.stale) == (
        ClockPolicy.ACCEPT_FLAGGED,
        90_000,
        StalePolicy.DENY_UNKNOWN,
    )
    assert policy.stoplist_max_age_ms == 6 * 3_600_000
    assert policy.media_id(MediaKind.NFC) == "card"


def test_every_problem_is_listed_at_once() -> None:
    document = {
        "device": {"id": "bad id!", "type": "tram", "colour": "red"},
        "policy": {"retap_window_s": -1, "clock": "guess"},
        "feedback": {"kind": "gpio"},
        "readers": [{"kind": "nfc"}, {"kind": "laser", "target": "x"}],
        "extra": {},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(document, {})
    problems = "\n".join(caught.value.problems)
    for expected in (
        "unknown section [extra]",
        "device.id",
        "device.type",
        "unknown key 'colour'",
        "policy.retap_window_s",
        "policy.clock",
        "state.directory is required",
        "needs green_pin and red_pin",
        "readers[0].target is required",
        "readers[1].kind",
    ):
        assert expected in problems


def test_environment_overrides(tmp_path: Path) -> None:
    config = load_config(
        EXAMPLE,
        {
            environment.FAREBOX_AGENT_DEVICE_ID: "bus-999",
            environment.FAREBOX_AGENT_STATE_DIR: str(tmp_path),
            environment.FAREBOX_AGENT_ROUTE: "32",
            environment.FAREBOX_AGENT_FEEDBACK: "none",
            environment.FAREBOX_AGENT_LOG_LEVEL: "debug",
        },
    )
    assert (config.device_id, config.state.directory, config.location.route) == (
        "bus-999",
        tmp_path,
        "32",
    )
    assert (config.feedback.kind, config.log_level) == (FeedbackKind.NONE, "DEBUG")


def test_systemd_state_directory_is_the_fallback(tmp_path: Path) -> None:
    config = parse_config({"device": {"id": "bus-1"}}, {environment.STATE_DIRECTORY: str(tmp_path)})
    assert config.state.directory == tmp_path


def test_bad_config_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[device]\nid = "bus 1"\n')
    assert main(["run", "--config", str(path)]) == EX_CONFIG == 78
    assert "device.id" in capsys.readouterr().err
    path.write_text("not toml [")
    assert main(["status", "--config", str(path)]) == EX_CONFIG
    assert main(["status", "--config", str(tmp_path / "missing.toml")]) == EX_CONFIG


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "-1"])
def test_a_number_that_is_not_a_usable_setting_exits_78(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'[device]\nid = "bus-1"\n[policy]\nretap_window_s = {value}\n')
    assert main(["run", "--config", str(path)]) == EX_CONFIG
    assert "policy.retap_window_s must be a number from 0 to 1e+09" in capsys.readouterr().err


def test_status_reports_every_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'[device]\nid = "bus-1"\n[state]\ndirectory = "{tmp_path}"\n')
    assert main(["status", "--config", str(path)]) == 0
    assert "not running" in capsys.readouterr().out
    Store.open(tmp_path / "agent.db", "bus-1", lock_timeout_ms=100).close()
    assert main(["status", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {
        "device",
        "service",
        "versions",
        "stoplist_stale",
        "journal",
        "last_sync",
        "clock",
        "disk_free_bytes",
        "database_bytes",
    }
    assert set(report["journal"]) == {
        "head_seq",
        "acked_seq",
        "unsynced",
        "oldest_unsynced",
        "kept",
    }
    assert report["clock"]["state"] == "synced"


def test_status_between_an_upgrade_and_the_restart_asks_for_the_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'[device]\nid = "bus-1"\n[state]\ndirectory = "{tmp_path}"\n')
    newest, _ = MIGRATIONS[-1]
    database_before(tmp_path / "agent.db", newest, monkeypatch)
    assert main(["status", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["journal"] is None
    assert report["schema"]["found"] == report["schema"]["expected"] - 1
    assert "restart the agent" in report["schema"]["note"]
    Store.open(tmp_path / "agent.db", "bus-1", lock_timeout_ms=100).close()  # the restart
    assert main(["status", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "schema" not in report
    assert report["journal"]["unsynced"] == 0


def test_every_environment_variable_and_command_is_documented() -> None:
    text = DOCS.read_text()
    for variable in environment.ALL:
        assert f"`{variable}`" in text, variable
    for command in ("farebox-agent enroll", "farebox-agent run", "farebox-agent status"):
        assert command in text
