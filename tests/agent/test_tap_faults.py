"""A tap whose decision fails costs that tap only: the rider is refused, the tap recorded
where it can be, and the tap loop (and with it the validator) goes on.

The forged code reaches the runtime through a pty scanner and pyserial; the one fault no
input reaches any more (a bug in `decide`) is injected by replacing `decide`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest

from farebox.agent import runtime as runtime_module
from farebox.agent.decision import DECISION_ERROR, decide, identify
from farebox.agent.presentation import Presentation
from farebox.agent.readers.base import Backoff, HealthState
from farebox.agent.readers.scanner import ScannerReader
from farebox.agent.runtime import Runtime
from farebox.agent.store.state import Store
from farebox.protocol.records import MediaKind, Outcome, Reason
from farebox.protocol.tickets import base45, cose, cwt, ticket
from farebox.simulators.scanner import ScannerSimulator
from tests.agent.builders import (
    ISSUER_KEY,
    KID,
    MORNING_MS,
    card,
    install_packages,
    qr_ticket,
    scan,
)
from tests.agent.harness import Recorder, agent_config, start_agent, until
from tests.support.journal import journal_taps

FAST = Backoff(first=0.05, most=0.2)
HOUR_MS = 3_600_000


def signed_with_id(ticket_id: bytes, around_ms: int) -> str:
    """A ticket signed by a trusted issuer key whose id no genuine ticket can have."""
    genuine = ticket.decode(qr_ticket(valid_from_ms=around_ms, valid_until_ms=around_ms + HOUR_MS))
    claims = replace(cwt.decode_claims(genuine.payload), cwt_id=ticket_id)
    return ticket.PREFIX + base45.encode(cose.sign(cwt.encode_claims(claims), ISSUER_KEY, kid=KID))


@pytest.mark.parametrize(("length", "readable"), [(32, True), (33, False), (200, False)])
def test_a_ticket_id_longer_than_a_ticket_can_have_is_read_as_unreadable(
    length: int, readable: bool
) -> None:
    who = identify(scan(signed_with_id(b"\xab" * length, MORNING_MS)))
    assert who.media is MediaKind.QR
    assert (who.ticket_id is not None) is readable
    assert who.token.startswith("qr:unreadable:") is not readable
    assert len(who.token) <= 256


async def test_a_forged_code_with_an_over_long_id_is_refused_and_the_scanner_goes_on(
    tmp_path: Path,
) -> None:
    config = agent_config(tmp_path, device={"type": "turnstile"})
    install_packages(config.state.database, "bus-017")
    store = Store.open(config.state.database, config.device_id, lock_timeout_ms=1000)
    now_ms = time.time_ns() // 1_000_000
    forged = signed_with_id(b"\xab" * 200, now_ms - HOUR_MS // 2)
    genuine = qr_ticket(valid_from_ms=now_ms - HOUR_MS, valid_until_ms=now_ms + HOUR_MS)
    feedback = Recorder(config.state.database)
    with ScannerSimulator() as scanner:
        reader = ScannerReader("qr-0", scanner.device_path, backoff=FAST)
        runtime = Runtime(config, store, [reader], feedback)
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        try:
            await asyncio.wait_for(runtime.wait_ready(), 10)
            await until(lambda: reader.health.state is HealthState.READY)
            for _ in range(12):  # more than systemd's StartLimitBurst of restarts
                scanner.scan(forged)
            scanner.scan(genuine)
            await until(lambda: runtime.taps_handled == 13)
            assert not task.done()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    *refused, accepted = feedback.taps
    assert {(shown.reason, shown.open_gate) for shown in refused} == {(Reason.UNKNOWN_MEDIA, False)}
    assert (accepted.reason, accepted.open_gate) == (Reason.OK, True)
    taps = journal_taps(config.state.database)
    assert len({tap.token for tap in taps[:-1]}) == 1
    assert taps[0].token.startswith("qr:unreadable:")
    assert taps[-1].token == "qr:" + b"T-0001".hex()


async def test_a_fault_in_deciding_a_tap_refuses_it_and_the_next_tap_is_decided(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faulty = card(b"\x0f\x0f\x0f\x0f")

    def decide_with_a_bug(presentation: Presentation, *args: object) -> object:
        if presentation.uid == faulty.uid:
            raise KeyError("a bug")
        return decide(presentation, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime_module, "decide", decide_with_a_bug)
    config = agent_config(tmp_path, device={"type": "turnstile"})
    install_packages(config.state.database, "bus-017")
    agent = await start_agent(config)
    agent.reader.feed(
        [
            faulty,
            card(b"\x01\x02\x03\x04", at_ms=MORNING_MS + 1000),
            card(faulty.uid or b"", at_ms=MORNING_MS + 2000),
        ]
    )
    await until(lambda: agent.runtime.taps_handled == 3)
    assert not agent.task.done()
    await agent.shutdown()
    refused, accepted, again = agent.feedback.taps
    assert (refused.accepted, refused.reason, refused.open_gate) == (
        False,
        Reason.UNKNOWN_MEDIA,
        False,
    )
    assert (accepted.accepted, accepted.open_gate) == (True, True)
    assert again.reason is Reason.UNKNOWN_MEDIA  # decided again, not repeated as a re-tap
    first, _, last = journal_taps(agent.runtime.config.state.database)
    assert (first.token, first.outcome, first.reason) == (
        "nfc:0f0f0f0f",
        Outcome.DENY,
        Reason.UNKNOWN_MEDIA,
    )
    assert first.flags == (DECISION_ERROR,)
    assert last.flags == (DECISION_ERROR,)


async def test_a_tap_that_cannot_even_be_recorded_as_refused_is_dropped_alone(
    tmp_path: Path,
) -> None:
    config = agent_config(tmp_path)
    agent = await start_agent(config)
    # A uid no card has (a typed one): no record can hold its token.
    agent.reader.feed([card(b"\x04" * 200), card(b"\x01\x02\x03\x04")])
    await until(lambda: agent.runtime.taps_handled == 1)
    await agent.shutdown()
    (shown,) = agent.feedback.taps
    assert shown.token == "nfc:01020304"
    assert [tap.token for tap in journal_taps(config.state.database)] == ["nfc:01020304"]
