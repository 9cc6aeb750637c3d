"""The server's sync, tariff and device commands, run as an operator would."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from farebox.protocol.enrollment import EnrollRequest, decode_enrollment, encode_enroll_request
from farebox.protocol.keys import SigningKey
from farebox.server.cli import main

ROOT = Path(__file__).resolve().parents[3]
CITY = ROOT / "packaging" / "tariffs" / "city-kzt.toml"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def test_tariff_check_and_quote_need_no_store(tmp_path: Path) -> None:
    status, text = run("tariff", "check", str(CITY))
    assert status == 0
    assert json.loads(text)["counts"]["rider_categories"] == 5
    journey = tmp_path / "journey.json"
    journey.write_text(json.dumps({
        "rider_category_id": "student",
        "legs": [{"route_id": "12", "from_stop_id": "abay", "to_stop_id": "abay",
                  "departure": "2026-11-26T08:00:00", "arrival": "2026-11-26T08:20:00"}],
    }))  # fmt: skip
    status, text = run("tariff", "quote", "--tariff", str(CITY), "--journey", str(journey))
    assert status == 0
    assert json.loads(text)["total"] == "100.00"
    assert not list(tmp_path.glob("*.db"))


def test_a_bad_tariff_lists_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[tariff]\nid = 3\n")
    assert run("tariff", "check", str(bad))[0] == 2
    assert "not a valid tariff" in capsys.readouterr().err


def test_publish_enroll_and_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    assert run("init", "--db", db)[0] == 0
    status, text = run("tariff", "publish", "--db", db, "--tariff", str(CITY))
    assert (status, "tariff package 1" in text) == (0, True)
    status, token = run("enroll-token", "--db", db, "--name", "bus-017", "--kind", "bus")
    assert status == 0
    assert len(token.strip()) >= 20
    status, listed = run("device", "list", "--db", db)
    assert json.loads(listed) == []
    assert run("device", "revoke", "--db", db, "bus-017")[0] == 2  # not enrolled yet
    config = tmp_path / "config.toml"
    config.write_text("in_service = false\n")
    assert run("config", "publish", "--db", db, str(config))[0] == 0
    status, rotated = run("package-key", "rotate", "--db", db)
    assert (status, "signs from now on" in rotated) == (0, True)


async def enroll(port: int, token: str) -> str:
    body = encode_enroll_request(EnrollRequest(token, SigningKey.generate().verify_key))
    async with aiohttp.ClientSession() as http, http.post(
        f"http://127.0.0.1:{port}/v1/enroll", data=body,
        headers={"Content-Type": "application/cbor"},
    ) as response:  # fmt: skip
        assert response.status == 200
        return decode_enrollment(await response.read()).device


@pytest.mark.integration
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_run_serves_until_sigterm(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        db = f"sqlite:///{tmp_path / 'server.db'}"
    else:
        db = request.getfixturevalue("postgres_dsn")
    assert run("init", "--db", db)[0] == 0
    token = run("enroll-token", "--db", db, "--name", "gate-1", "--kind", "gate")[1].strip()
    env = {**os.environ, "FAREBOX_DB": db}
    with subprocess.Popen(
        [sys.executable, "-m", "farebox.server.cli", "run", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as server:  # fmt: skip
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, (
            server.stderr.read() if server.stderr else ""
        )
        port = int(line.split("127.0.0.1:")[1].split()[0])
        assert asyncio.run(enroll(port, token)) == "gate-1"
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0


def test_run_refuses_to_start_on_a_clock_that_fell_back_to_1970(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The system clock cannot be set back here without disturbing the machine: the
    # server's reading of it is what is replaced.
    db = f"sqlite:///{tmp_path / 'server.db'}"
    assert run("init", "--db", db)[0] == 0
    monkeypatch.setattr("farebox.server.sync_commands.wall_clock_ms", lambda: 86_400_000)
    assert run("run", "--db", db, "--listen", "127.0.0.1:0") == (2, "")
    assert "the system clock reads 1970-01-02T00:00:00+00:00" in capsys.readouterr().err


def test_publish_refuses_a_tariff_settlement_could_not_rate_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    assert run("init", "--db", db)[0] == 0
    text = CITY.read_text(encoding="utf-8")
    for changed, says in [
        (text.replace('timezone = "Asia/Almaty"', 'timezone = "Asia/Bishkek"'), "fare days"),
        (
            text.replace('currency = "KZT"', 'currency = "USD"'),
            "is in USD, the ledger's fares in KZT",
        ),
    ]:
        path = tmp_path / "tariff.toml"
        path.write_text(changed, encoding="utf-8")
        assert run("tariff", "publish", "--db", db, "--tariff", str(path))[0] == 2
        assert says in capsys.readouterr().err
    # A GTFS feed has no fare day: it takes the ledger's. (Package 1: nothing before it.)
    metro = ROOT / "tests" / "protocol" / "tariffs" / "feeds" / "metro"
    monkeypatch.setenv("FAREBOX_TIMEZONE", "America/Toronto")
    monkeypatch.setenv("FAREBOX_CURRENCY", "CAD")
    status, text = run("tariff", "publish", "--db", db, "--gtfs", str(metro))
    assert (status, "published as tariff package 1" in text) == (0, True)


@pytest.mark.parametrize("hours", ["-5", "0", "inf", "nan", "1e20", "soon"])
def test_an_enrollment_token_lives_more_than_nothing_and_at_most_a_year(
    hours: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run("enroll-token", "--name", "bus-1", "--kind", "bus", "--hours", hours)
    assert exit_.value.code == 2
    assert "hours is more than 0 and at most 8784" in capsys.readouterr().err
