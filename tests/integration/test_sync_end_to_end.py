"""A real validator agent and a real sync server, each its own process, on 127.0.0.1.

The server runs `farebox-server run` over SQLite or PostgreSQL with the city tariff
published; the agent enrolls with a one-time token, takes taps typed on its standard
input (the scripted reader), journals them, and syncs in the background. The ledger must
end up with every accepted tap posted exactly once, and stoplist changes made on the
server must reach the validator within one package poll.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from farebox.agent.sync.enrollment import read_enrollment
from farebox.server.cli import main as server_cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CITY = ROOT / "packaging" / "tariffs" / "city-kzt.toml"
DEADLINE_S = 60
RETAP_S = 1
"""The validators' re-tap window: a card shown again within it gets the same answer."""


def server(*argv: str) -> str:
    out = io.StringIO()
    assert server_cli(list(argv), out) == 0, argv
    return out.getvalue()


def wait_for(what: str, check: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@contextlib.contextmanager
def running(
    argv: list[str], env: dict[str, str], log: Path, stdin: int | None = None
) -> Iterator[subprocess.Popen[str]]:
    """The process of `argv`, its standard error (its log) written to `log`: a pipe nobody
    reads would stop it once full."""
    with (
        log.open("a") as errors,
        subprocess.Popen(
            argv, stdin=stdin, stdout=subprocess.PIPE, stderr=errors, text=True, env=env
        ) as process,
    ):
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(30)


AGENT_CONFIG = """
[device]
type = "bus"
[location]
route = "12"
vehicle = "bus-017"
stop = "abay-ave"
[state]
directory = "{state}"
[fares]
nfc_media = "card"
[policy]
retap_window_s = {retap_s}
[feedback]
kind = "console"
[sync]
flush_interval_s = 0.2
batch_size = 3
package_poll_s = 0.5
heartbeat_s = 1
retry_initial_s = 0.1
retry_max_s = 1
[[readers]]
kind = "scripted"
id = "typed"
target = "-"
"""


def status(config: Path, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "farebox.agent.cli", "status", "--json", "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=30, check=True,
    )  # fmt: skip
    report: dict[str, object] = json.loads(done.stdout)
    return report


def version(report: dict[str, object], kind: str) -> int:
    versions = report.get("versions") or {}
    assert isinstance(versions, dict)
    entry = versions.get(kind)
    return int(entry["version"]) if isinstance(entry, dict) else 0


def tap(agent: subprocess.Popen[str], token: str) -> str:
    stdin: IO[str] | None = agent.stdin
    stdout: IO[str] | None = agent.stdout
    assert stdin is not None
    assert stdout is not None
    stdin.write(f"nfc {token}\n")
    stdin.flush()
    return stdout.readline()


def synced(db: str, config: Path, env: dict[str, str]) -> bool:
    """Whether the server's cursor for the one device is the agent's journal head."""
    devices = json.loads(server("device", "list", "--db", db))
    journal = status(config, env).get("journal")
    assert isinstance(journal, dict)
    return bool(devices) and devices[0]["cursor"] == journal["head_seq"]


def a_server_with_a_bus_to_enroll(db: str, tmp_path: Path) -> tuple[dict[str, str], str, Path]:
    """The environment naming store `db`, made with the city tariff published; an
    enrollment token for bus-017; and the agent's config."""
    env = {**os.environ, "FAREBOX_DB": db}
    server("init", "--db", db)
    server("tariff", "publish", "--db", db, "--tariff", str(CITY))
    token = server("enroll-token", "--db", db, "--name", "bus-017", "--kind", "bus").strip()
    config = tmp_path / "agent.toml"
    config.write_text(AGENT_CONFIG.format(state=tmp_path / "agent", retap_s=RETAP_S))
    return env, token, config


def serving(listen: str) -> list[str]:
    return [sys.executable, "-m", "farebox.server.cli", "run", "--listen", listen]


@contextlib.contextmanager
def a_server_and_its_agent(
    serve: list[str], env: dict[str, str], token: str, config: Path
) -> Iterator[tuple[subprocess.Popen[str], subprocess.Popen[str]]]:
    """The server of `serve`, and the agent of `config` enrolled with `token` and running,
    taps typed on its standard input; their logs beside the config."""
    logs = config.parent
    with running(serve, env, logs / "server.log") as srv:
        assert srv.stdout is not None
        url = srv.stdout.readline().split(" listening on ")[1].split()[0]
        enrolled = subprocess.run(
            [sys.executable, "-m", "farebox.agent.cli", "enroll", "--server", url,
             "--token", token, "--config", str(config)],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert (enrolled.returncode, enrolled.stdout) == (0, "bus-017\n"), enrolled.stderr
        agent_run = [sys.executable, "-m", "farebox.agent.cli", "run", "--config", str(config)]
        with running(agent_run, env, logs / "agent.log", stdin=subprocess.PIPE) as agent:
            yield srv, agent


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_taps_reach_the_ledger_once_and_the_stoplist_reaches_the_validator(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = (
        f"sqlite:///{tmp_path / 'server.db'}"
        if backend == "sqlite"
        else str(request.getfixturevalue("postgres_dsn"))
    )
    env, token, config = a_server_with_a_bus_to_enroll(db, tmp_path)
    with a_server_and_its_agent(serving("127.0.0.1:0"), env, token, config) as (_, agent):
        wait_for("the tariff package", lambda: version(status(config, env), "tariff") >= 1)
        riders = [f"04a1b2c3d4{n:04x}" for n in range(7)]
        answers = [tap(agent, rider) for rider in riders]
        assert all(line.startswith("ACCEPT") for line in answers), answers
        wait_for("the journal to reach the server", lambda: synced(db, config, env))

        def stoplisted(rider: str) -> bool:
            return "stoplisted balance" in server("account", "show", "--db", db, f"nfc:{rider}")

        # A lost card blocked on the server is refused by the validator one poll later.
        before = version(status(config, env), "stoplist")
        lost = "04ffee0011aa22"
        server("card", "block", "--db", db, f"nfc:{lost}", "--reason", "lost")
        wait_for("the stoplist delta", lambda: version(status(config, env), "stoplist") > before)
        assert tap(agent, lost).startswith("DENY reason=stoplisted")

        # Riders with no money rode into debt (first-ride risk): the ledger stop-listed
        # them, in the same stoplist versions the validator holds by now. A top-up lifts it.
        owing = riders[0]
        assert stoplisted(owing)
        assert tap(agent, owing).startswith("DENY reason=stoplisted")
        server("account", "topup", "--db", db, f"nfc:{owing}", "500", "--channel", "kiosk",
               "--ref", "K-1")  # fmt: skip
        # Waiting for the server's own version: any newer one may predate the top-up.
        lifted_in = int(server("stoplist", "version", "--db", db).split()[1])
        wait_for(
            "the top-up's stoplist",
            lambda: version(status(config, env), "stoplist") >= lifted_in,
        )
        time.sleep(RETAP_S)  # a tap within the re-tap window repeats the earlier denial
        assert tap(agent, owing).startswith("ACCEPT")

        # The server rotates its package key: the validator learns the new key from the
        # old one's endorsement, and the next stoplist, signed by the new key, lands.
        server("package-key", "rotate", "--db", db)
        stolen = "04ffee0011aa33"
        blocked = server("card", "block", "--db", db, f"nfc:{stolen}", "--reason", "stolen")
        listed_in = int(blocked.rsplit("stoplist version ", 1)[1].split()[0])
        wait_for(
            "a stoplist signed by the rotated key",
            lambda: version(status(config, env), "stoplist") >= listed_in,
        )
        assert tap(agent, stolen).startswith("DENY reason=stoplisted")
        learned = read_enrollment(tmp_path / "agent")
        assert learned is not None
        assert len(learned.package_keys) == 2

    # Every accepted tap is posted once, whatever was resent on the way.
    for rider in riders[1:]:
        shown = server("account", "show", "--db", db, f"nfc:{rider}")
        assert shown.count("tap:bus-017:") == 1, shown


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_server_killed_mid_upload_and_restarted_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    env, token, config = a_server_with_a_bus_to_enroll(db, tmp_path)
    serve = serving(f"127.0.0.1:{free_port()}")
    riders = [f"04c0ffee{n:06x}" for n in range(40)]
    with a_server_and_its_agent(serve, env, token, config) as (first, agent):
        wait_for("the tariff package", lambda: version(status(config, env), "tariff") >= 1)
        accepted = [tap(agent, rider) for rider in riders[:20]]
        first.kill()  # mid-stream: batches in flight are cut off
        first.wait(30)
        accepted += [tap(agent, rider) for rider in riders[20:]]  # offline: still decided
        with running(serve, env, tmp_path / "restarted.log") as second:
            assert second.stdout is not None
            second.stdout.readline()
            wait_for("the journal to reach the restarted server", lambda: synced(db, config, env))
    assert all(line.startswith("ACCEPT") for line in accepted), accepted
    for rider in riders:
        shown = server("account", "show", "--db", db, f"nfc:{rider}")
        assert shown.count("tap:bus-017:") == 1, shown


def test_a_server_restored_from_a_backup_brings_its_stoplist_to_the_validator(
    tmp_path: Path,
) -> None:
    path = tmp_path / "server.db"
    db = f"sqlite:///{path}"
    env, token, config = a_server_with_a_bus_to_enroll(db, tmp_path)
    serve = serving(f"127.0.0.1:{free_port()}")

    def stoplist_reaches_the_validator(card: str, reason: str) -> int:
        blocked = server("card", "block", "--db", db, f"nfc:{card}", "--reason", reason)
        listed_in = int(blocked.rsplit("stoplist version ", 1)[1].split()[0])
        wait_for(
            f"{card} on the validator",
            lambda: version(status(config, env), "stoplist") >= listed_in,
        )
        return listed_in

    lost, stolen, after = "04aa0000000001", "04aa0000000002", "04aa0000000003"
    with a_server_and_its_agent(serve, env, token, config) as (first, agent):
        stoplist_reaches_the_validator(lost, "lost")
        backup = sqlite3.connect(tmp_path / "backup.db")
        with contextlib.closing(sqlite3.connect(path)) as live, contextlib.closing(backup):
            live.backup(backup)
        held = stoplist_reaches_the_validator(stolen, "stolen")
        assert tap(agent, stolen).startswith("DENY reason=stoplisted")
        first.terminate()
        first.wait(30)
        for leftover in tmp_path.glob("server.db*"):
            leftover.unlink()
        (tmp_path / "backup.db").rename(path)  # the restore: the stolen card's block is gone
        # The restored store numbers on from its own head: the same version as the
        # validator's, another list. The poll's checksum tells them apart.
        blocked = server("card", "block", "--db", db, f"nfc:{after}", "--reason", "lost")
        assert f"stoplist version {held}" in blocked
        with running(serve, env, tmp_path / "restarted.log") as second:
            assert second.stdout is not None
            second.stdout.readline()
            wait_for(
                "the renumbered stoplist",
                lambda: version(status(config, env), "stoplist") > held,
            )
            time.sleep(RETAP_S)
            assert tap(agent, after).startswith("DENY reason=stoplisted")
            assert tap(agent, lost).startswith("DENY reason=stoplisted")
            # The block made after the backup went with it: an operator enters it again.
            assert tap(agent, stolen).startswith("ACCEPT")
    logged = (tmp_path / "restarted.log").read_text()
    assert (
        f"WARNING farebox.server.sync.publishing device bus-017 holds a stoplist version {held}"
        in logged
    )
