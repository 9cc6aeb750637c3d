"""Where the runtime file lives and what `status` makes of it: the service state of a
process that is gone is `not running`, whatever it last wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from farebox.agent import status
from farebox.agent.status import RuntimeStatus, read_runtime, service_state, write_runtime


def written(pid: int, service: str = "in_service") -> RuntimeStatus:
    return RuntimeStatus(service, 0, "ready", (), pid, 0)


def gone_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_a_runtime_file_written_by_a_process_that_is_gone_reads_not_running(
    tmp_path: Path,
) -> None:
    write_runtime(tmp_path, written(os.getpid()))
    assert service_state(read_runtime(tmp_path)) == "in_service"
    write_runtime(tmp_path, written(gone_pid()))  # killed -9, or crashed
    assert service_state(read_runtime(tmp_path)) == "not running"
    write_runtime(tmp_path, written(gone_pid(), "stopped"))  # said so as it stopped
    assert service_state(read_runtime(tmp_path)) == "stopped"
    write_runtime(tmp_path, written(0))
    assert service_state(read_runtime(tmp_path)) == "not running"
    assert service_state(None) == "not running"


def test_the_runtime_file_goes_to_the_run_directory_while_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, run = tmp_path / "state", tmp_path / "run"
    state.mkdir()
    monkeypatch.setattr(status, "RUN_DIRECTORY", run)
    write_runtime(state, written(os.getpid()))
    assert [p.name for p in state.iterdir()] == ["runtime.json"]
    run.mkdir()  # systemd's RuntimeDirectory=, a tmpfs
    write_runtime(state, written(os.getpid(), "out_of_service"))
    assert [p.name for p in run.iterdir()] == ["runtime.json"]
    assert list(state.iterdir()) == []  # the earlier release's file is gone
    assert service_state(read_runtime(state)) == "out_of_service"
