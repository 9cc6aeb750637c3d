"""The systemd units and example settings under packaging/ agree with the code they run."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from farebox.agent.cli import parser as agent_parser
from farebox.server import environment
from farebox.server.cli import build_parser as server_parser
from farebox.server.cli import configure_logging
from farebox.server.ledger.fare_day import FareDayPolicy
from farebox.server.ledger.top_up_policy import TopUpPolicy

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "packaging" / "systemd"
INSTALLED = "/opt/farebox/bin/"
"""Where the units expect the console scripts (a virtualenv at /opt/farebox)."""


def commands(unit: Path) -> list[list[str]]:
    """The command lines of a unit's ExecStart= and ExecStartPre= settings."""
    lines = unit.read_text().splitlines()
    return [
        shlex.split(line.split("=", 1)[1])
        for line in lines
        if line.startswith(("ExecStart=", "ExecStartPre="))
    ]


@pytest.mark.parametrize("unit", sorted(UNITS.glob("*.service")), ids=lambda path: path.name)
def test_each_unit_runs_a_command_its_program_accepts(unit: Path) -> None:
    parsers = {"farebox-agent": agent_parser(), "farebox-server": server_parser()}
    for program, *arguments in commands(unit):
        assert program.startswith(INSTALLED), program
        parsers[program.removeprefix(INSTALLED)].parse_args(arguments)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("unit", sorted(UNITS.glob("*.service")), ids=lambda path: path.name)
def test_systemd_finds_nothing_to_say_about_each_unit(unit: Path, tmp_path: Path) -> None:
    # The scripts as this checkout installs them, and an instance name for a template.
    scripts = str(Path(sys.executable).parent) + "/"
    name = unit.name.replace("@.", "@1.")
    (tmp_path / name).write_text(unit.read_text().replace(INSTALLED, scripts))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_server_settings_file_sets_only_known_variables_to_valid_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = dict(
        line.split("=", 1)
        for line in (ROOT / "packaging" / "config" / "server.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(settings) <= set(environment.DEFAULTS)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    server_parser().parse_args(["run"])  # its default listen address is FAREBOX_LISTEN's
    FareDayPolicy.from_environment()
    TopUpPolicy.from_environment()
    assert int(environment.setting(environment.FAREBOX_CREDIT_LIMIT)) >= 0
    configure_logging()
