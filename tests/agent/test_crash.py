"""SIGKILL at random moments: a real agent process under a stream of scripted taps is
killed at least 100 times; after each kill every tap that was shown as accepted is in the
journal exactly once, no token is journalled twice, and the chain verifies."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from farebox.agent.store.state import Store
from farebox.protocol.records import Outcome, Tap
from tests.agent.builders import install_packages

DEVICE = "bus-017"
WORKERS = 3
KILLS_PER_WORKER = 34  # 102 kills in all
DEADLINE_S = 180.0  # about 40 s on an idle 2-core machine; the margin is for a busy one
SEED = 20261126

CONFIG = """
[device]
id = "bus-017"
[location]
route = "12"
vehicle = "bus-017"
stop = "abay-ave"
[state]
directory = "{directory}"
[feedback]
kind = "console"
[log]
level = "ERROR"
[[readers]]
kind = "scripted"
id = "script"
target = "-"
"""


def prepare(directory: Path) -> Path:
    """A state directory whose store holds the city tariff, and its config file."""
    directory.mkdir()
    install_packages(directory / "agent.db", DEVICE)
    config = directory / "agent.toml"
    config.write_text(CONFIG.format(directory=directory))
    return config


def one_life(config: Path, tokens: list[str], rng: random.Random) -> set[str]:
    """Run the agent, feed it `tokens`, SIGKILL it; return the tokens shown accepted.

    One kill in five lands at a random moment of start-up; the others a random moment
    after the first feedback, in the middle of the stream of taps.
    """
    agent = subprocess.Popen(
        [sys.executable, "-m", "farebox.agent.cli", "run", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert agent.stdin is not None
    assert agent.stdout is not None
    stdin, stdout = agent.stdin, agent.stdout
    lines: list[str] = []
    first = threading.Event()

    def feed() -> None:
        # Taps keep arriving while the agent starts, runs and dies.
        try:
            for token in tokens:
                stdin.write(f"nfc {token.removeprefix('nfc:')}\n")
                stdin.flush()
                time.sleep(0.002)
        except (BrokenPipeError, OSError):
            return

    def collect() -> None:
        for line in stdout:
            lines.append(line)
            first.set()

    threads = [threading.Thread(target=f, daemon=True) for f in (feed, collect)]
    for thread in threads:
        thread.start()
    if rng.random() < 0.2:
        time.sleep(rng.uniform(0.0, 0.6))
    else:
        first.wait(10)
        time.sleep(rng.uniform(0.0, 0.25))
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait(5)
    for thread in threads:
        thread.join(5)
    with contextlib.suppress(BrokenPipeError):
        stdin.close()  # the dead agent leaves unread lines in the pipe
    stdout.close()
    return {
        word.removeprefix("token=")
        for line in lines
        if line.startswith("ACCEPT")
        for word in line.split()
        if word.startswith("token=")
    }


def check_journal(directory: Path, accepted: set[str]) -> int:
    store = Store.open(directory / "agent.db", DEVICE, lock_timeout_ms=1000)
    try:
        store.verify()
        entries = store.pending(1_000_000)
    finally:
        store.close()
    assert [e.record.seq for e in entries] == list(range(1, len(entries) + 1))
    taps = [e.record.body for e in entries if isinstance(e.record.body, Tap)]
    counts = Counter(tap.token for tap in taps)
    assert all(count == 1 for count in counts.values()), "a tap was journalled twice"
    journalled = {tap.token for tap in taps if tap.outcome is Outcome.ACCEPT}
    missing = accepted - journalled
    assert not missing, f"shown accepted but not journalled: {sorted(missing)[:5]}"
    return len(taps)


def worker(index: int, root: Path, deadline: float) -> tuple[int, int]:
    """Kill one agent KILLS_PER_WORKER times; return the kills and those that cut a stream."""
    rng = random.Random(SEED + index)
    directory = root / f"agent-{index}"
    config = prepare(directory)
    accepted: set[str] = set()
    kills = midstream = 0
    for life in range(KILLS_PER_WORKER):
        assert time.monotonic() < deadline, "the crash test ran past its time bound"
        tokens = [f"nfc:{index:02x}{life:04x}{n:04x}" for n in range(200)]
        shown = one_life(config, tokens, rng)
        accepted |= shown
        kills += 1
        midstream += 0 < len(shown) < len(tokens)
        check_journal(directory, accepted)
    return kills, midstream


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda i: worker(i, tmp_path, deadline), range(WORKERS)))
    assert sum(kills for kills, _ in results) >= 100
    # Enough kills must land between two taps of a stream for the test to mean something.
    assert sum(midstream for _, midstream in results) >= 20


@pytest.mark.integration
def test_sigterm_finishes_cleanly_with_every_shown_tap_journalled(tmp_path: Path) -> None:
    config = prepare(tmp_path / "agent")
    log = tmp_path / "stderr.log"
    tokens = [f"nfc:77{n:06x}" for n in range(20)]
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "farebox.agent.cli", "run", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as agent,
    ):
        assert agent.stdin is not None
        assert agent.stdout is not None
        agent.stdin.write("".join(f"nfc {t.removeprefix('nfc:')}\n" for t in tokens))
        agent.stdin.flush()
        shown = [agent.stdout.readline() for _ in tokens]
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0, log.read_text()
    accepted = {line.split("token=")[1].split()[0] for line in shown if line.startswith("ACCEPT")}
    assert accepted == set(tokens)
    assert check_journal(tmp_path / "agent", accepted) == len(tokens)
