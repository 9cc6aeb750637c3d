"""Answers to a batch outside the protocol, over real HTTP on 127.0.0.1: only a 400
malformed or unsupported_version halts the uploader; any other answer that is neither an
ack nor a refusal is retried with backoff and full jitter. A halted uploader sends its
batch again every HALTED_RETRY_S, and resumes by itself once the server takes it."""

from __future__ import annotations

import logging

import pytest

from farebox.agent.sync import upload
from farebox.agent.sync.report import read_sync_report
from tests.agent.harness import until
from tests.agent.sync.conftest import DEVICE, Validator
from tests.agent.sync.server import Fault, SyncServer

BATCHES = "/v1/batches"


def state(validator: Validator) -> object:
    return (read_sync_report(validator.directory) or {}).get("state")


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param((404, "not_found"), id="404-during-a-deploy"),
        pytest.param((409, "idempotency_conflict"), id="409-problem-not-a-refusal"),
        pytest.param((422, "ledger_refused"), id="422"),
        pytest.param((400, "bad_request"), id="400-not-malformed"),
        pytest.param((403, "forbidden"), id="403-from-a-proxy"),
        pytest.param((401, "authorization_required"), id="401-from-a-proxy"),
    ],
)
async def test_an_answer_outside_the_protocol_is_retried_with_backoff(
    server: SyncServer, validator: Validator, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    server.fail(BATCHES, fault, fault)
    await validator.taps(3)
    with caplog.at_level(logging.WARNING, "farebox.agent.sync"):
        validator.start()
        await until(lambda: validator.store.acked.seq == 3)
        await validator.halt()
    assert len(server.posts(BATCHES)) == 3
    assert all(server.stored[DEVICE, seq] == 1 for seq in range(1, 4))
    assert state(validator) == "stopped"  # never halted
    retries = [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]
    assert [m.split("; retry ")[1].split(" ")[0] for m in retries] == ["1", "2"]
    assert all("neither an ack nor a refusal" in m for m in retries)
    # Full jitter below a doubling cap (retry_initial_s 0.02), as for any other retry.
    waits = [float(m.split(" in ")[1].split(" ")[0]) for m in retries]
    assert all(w <= cap + 0.05 for w, cap in zip(waits, (0.02, 0.04), strict=True))


async def test_a_halted_uploader_tries_again_and_resumes_once_the_server_takes_its_batch(
    server: SyncServer,
    validator: Validator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(upload, "HALTED_RETRY_S", 0.3)
    server.fail(BATCHES, (400, "malformed"), (400, "unsupported_version"))
    await validator.taps(3)
    with caplog.at_level(logging.WARNING, "farebox.agent.sync"):
        validator.start()
        await until(lambda: state(validator) == "uploads_halted")
        report = read_sync_report(validator.directory) or {}
        assert "400 malformed" in str(report["halted"])
        beats = len(server.heartbeats)
        await until(lambda: len(server.heartbeats) > beats)  # the rest of the sync goes on
        await until(lambda: validator.store.acked.seq == 3)  # the server took the third try
        await until(lambda: state(validator) == "running")
    assert (read_sync_report(validator.directory) or {}).get("halted") is None
    await validator.taps(2)
    await until(lambda: validator.store.acked.seq == 5)  # uploads go on as before
    await validator.halt()
    assert len(server.posts(BATCHES)) == 4
    halts = [r for r in caplog.records if r.getMessage().startswith("uploads halted")]
    assert [r.levelno for r in halts] == [logging.ERROR, logging.ERROR]
    assert any(r.getMessage().startswith("uploads resumed") for r in caplog.records)
