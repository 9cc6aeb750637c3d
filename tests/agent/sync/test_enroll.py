"""Enrollment against a real HTTP server on 127.0.0.1: key, enrollment file, config package,
clock offset; refused twice unless forced; a refused token and an absent server."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from farebox.agent.cli import EX_UNAVAILABLE, main
from farebox.agent.config import parse_config
from farebox.agent.errors import EnrollmentError
from farebox.agent.store.state import Store
from farebox.agent.sync.enroll import NEW_KEY_FILE, enroll
from farebox.agent.sync.enrollment import KEY_FILE, read_enrollment
from farebox.protocol.enrollment import DeviceKind
from farebox.protocol.keyfile import load_key
from tests.agent.sync.conftest import DEVICE
from tests.agent.sync.server import PACKAGE_KEY, SyncServer


async def test_enroll_keeps_key_enrollment_and_config(
    tmp_path: Path, server: SyncServer, base_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server.skew_ms = 42_000
    code = await asyncio.to_thread(
        main, ["enroll", "--server", base_url, "--token", "t-1", "--state-dir", str(tmp_path)]
    )
    assert code == 0
    assert capsys.readouterr().out == f"{DEVICE}\n"
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    enrolled = read_enrollment(tmp_path)
    assert enrolled is not None
    assert (enrolled.device, enrolled.kind, enrolled.server) == (DEVICE, DeviceKind.BUS, base_url)
    assert enrolled.package_keys == (PACKAGE_KEY.verify_key,)
    assert server.devices[DEVICE].key.raw != b""
    store = Store.open(tmp_path / "agent.db", DEVICE, lock_timeout_ms=1000)
    try:
        assert store.caches.config is not None
        assert store.caches.config.value == {"in_service": True}
        offset = store.clock_offset_ms()
        assert offset is not None
        assert abs(offset - 42_000) < 1_000
    finally:
        store.close()
    # Once enrolled, the config needs no device id.
    config = parse_config({"state": {"directory": str(tmp_path)}}, {})
    assert config.device_id == DEVICE


async def test_enrolling_twice_is_refused_unless_forced(
    tmp_path: Path, server: SyncServer, base_url: str
) -> None:
    first = await asyncio.to_thread(enroll, base_url, "t-1", tmp_path)
    old_key = (tmp_path / KEY_FILE).read_bytes()
    server.tokens["t-2"] = DEVICE
    with pytest.raises(EnrollmentError, match="already enrolled"):
        await asyncio.to_thread(enroll, base_url, "t-2", tmp_path)
    # A refused token leaves the device enrolled with the key the server holds.
    with pytest.raises(EnrollmentError, match="refused the token"):
        await asyncio.to_thread(enroll, base_url, "spent", tmp_path, force=True)
    assert (tmp_path / KEY_FILE).read_bytes() == old_key
    assert read_enrollment(tmp_path) == first
    again = await asyncio.to_thread(enroll, base_url, "t-2", tmp_path, force=True)
    assert again.device == first.device
    assert (tmp_path / KEY_FILE).read_bytes() != old_key
    assert server.devices[DEVICE].key == load_key(tmp_path / KEY_FILE).verify_key
    with pytest.raises(FileNotFoundError):  # the new key is the key now
        (tmp_path / NEW_KEY_FILE).read_bytes()


async def test_a_refused_token_and_an_absent_server(
    tmp_path: Path, base_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["enroll", "--server", base_url, "--token", "wrong", "--state-dir", str(tmp_path)]
    assert await asyncio.to_thread(main, args) == 1
    assert "refused the token" in capsys.readouterr().err
    assert read_enrollment(tmp_path) is None
    # Nothing listens on port 9 of 127.0.0.1 (discard) in the test environment.
    args[2] = "http://127.0.0.1:9"
    assert await asyncio.to_thread(main, args) == EX_UNAVAILABLE
    assert "cannot reach" in capsys.readouterr().err


async def test_a_server_time_that_cannot_be_now_leaves_no_offset_and_the_enrollment_stands(
    tmp_path: Path, server: SyncServer, base_url: str
) -> None:
    server.skew_ms = -1_700_000_000_000  # the server says 1973: no offset can come of it
    enrolled = await asyncio.to_thread(enroll, base_url, "t-1", tmp_path)
    assert enrolled.device == DEVICE
    store = Store.open(tmp_path / "agent.db", DEVICE, lock_timeout_ms=1000)
    try:
        assert store.clock_offset_ms() is None
        assert store.caches.config is not None
    finally:
        store.close()
