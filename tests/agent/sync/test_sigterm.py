"""A real `farebox-agent run` process, enrolled with the test server on 127.0.0.1, gets
SIGTERM while its first batch is stored on the server but not yet answered: it exits
cleanly and keeps every record unacknowledged, and the next run has each one acked, and
stored by the server, once."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from farebox.agent.store.state import Store
from farebox.agent.sync.enroll import enroll
from tests.agent.harness import until
from tests.agent.sync.conftest import DEVICE
from tests.agent.sync.server import SyncServer

TAPS = 20
CONFIG = """
[location]
route = "12"
stop = "abay-ave"
[state]
directory = "{directory}"
[feedback]
kind = "none"
[log]
level = "WARNING"
[sync]
flush_interval_s = 0.05
package_poll_s = 0.2
heartbeat_s = 0.2
retry_initial_s = 0.02
retry_max_s = 0.1
[[readers]]
kind = "scripted"
target = "{script}"
"""


async def run_until(config: Path, condition: Callable[[], bool], seconds: float = 20.0) -> int:
    """Start the agent, wait for `condition`, send SIGTERM; the exit code."""
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "farebox.agent.cli",
        "run",
        "--config",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await until(condition, seconds)
        agent.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(agent.communicate(), 10)
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
    assert agent.returncode == 0, stderr.decode()
    return agent.returncode


def journal(directory: Path) -> tuple[int, int, int]:
    store = Store.open(directory / "agent.db", DEVICE, lock_timeout_ms=1000)
    try:
        figures = store.figures()
        return figures.head_seq, figures.acked_seq, figures.kept
    finally:
        store.close()


async def test_sigterm_during_an_upload_loses_nothing(
    tmp_path: Path, server: SyncServer, base_url: str
) -> None:
    await asyncio.to_thread(enroll, base_url, "t-1", tmp_path)
    script = tmp_path / "taps.txt"
    script.write_text("".join(f"nfc {i:014x}\n" for i in range(1, TAPS + 1)))
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG.format(directory=tmp_path, script=script))
    hold = server.hold = asyncio.Event()  # the first batch is stored, its answer held back
    try:
        await run_until(config, lambda: len(server.stored) > 0)
    finally:
        server.hold = None
        hold.set()
    first_head, acked, kept = journal(tmp_path)
    assert (acked, kept) == (0, first_head)  # nothing acknowledged, nothing lost
    script.write_text("")
    head = first_head + 1  # the second run's boot record
    # Stopped once the agent has taken the ack in, as its heartbeat tells: the server's
    # cursor moves before the ack reaches the agent, and SIGTERM in between would leave
    # the batch unacknowledged again (kept, and sent again by a later run).
    server.heartbeats.clear()

    def synced() -> bool:
        stored = server.devices[DEVICE].cursor.seq == head
        return stored and any(beat.journal_depth == 0 for beat in server.heartbeats)

    await run_until(config, synced)
    assert journal(tmp_path)[:2] == (head, head)
    assert all(server.stored[DEVICE, seq] == 1 for seq in range(1, head + 1))
    assert len(server.stored) == head
