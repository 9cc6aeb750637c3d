from __future__ import annotations

import io
import subprocess
import sys

from farebox.simulators.demo import run


def test_the_walk_through_runs_the_real_protocol_to_the_end() -> None:
    out = io.StringIO()
    assert run(out) == 0
    text = out.getvalue()
    assert "fares 500.00 KZT" in text
    assert "0.00 KZT" in text  # the pensioner rides free, and it is recorded
    assert "refused (bad_signature)" in text
    assert "refused (gap)" in text
    assert "fetch a full package" in text


def test_the_console_script_runs_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "farebox.simulators.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Every record posted once" in done.stdout
