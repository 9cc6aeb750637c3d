"""Hypothesis strategies for protocol values."""

from __future__ import annotations

from hypothesis import strategies as st

from farebox.protocol.chain import Cursor
from farebox.protocol.money import Money
from farebox.protocol.records import (
    MAX_TIME_MS,
    ClockState,
    EncodedRecord,
    Event,
    EventKind,
    Location,
    MediaKind,
    Outcome,
    Reason,
    Record,
    Tap,
    TapType,
)

devices = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
names = st.text(min_size=1, max_size=64)
codes = st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True)
hashes = st.binary(min_size=32, max_size=32)
times = st.integers(min_value=0, max_value=MAX_TIME_MS)

locations = st.builds(Location, st.none() | names, st.none() | names, st.none() | names)


@st.composite
def taps(draw: st.DrawFn) -> Tap:
    outcome = draw(st.sampled_from(Outcome))
    reasons = (
        [Reason.OK] if outcome is Outcome.ACCEPT else [r for r in Reason if r is not Reason.OK]
    )
    fare = (
        draw(st.none() | st.builds(Money, st.integers(0, 10**9), st.sampled_from(["KZT", "KGS"])))
        if outcome is Outcome.ACCEPT
        else None
    )
    return Tap(
        media=draw(st.sampled_from(MediaKind)),
        token=draw(st.text(min_size=1, max_size=256)),
        tap_type=draw(st.sampled_from(TapType)),
        outcome=outcome,
        reason=draw(st.sampled_from(reasons)),
        fare=fare,
        product=draw(st.none() | names),
        category=draw(st.none() | names),
        tariff_version=draw(st.integers(0, 2**40)),
        stoplist_version=draw(st.integers(0, 2**40)),
        flags=tuple(sorted(draw(st.sets(codes, max_size=3)))),
    )


events = st.builds(
    lambda kind, detail: Event(kind, tuple(sorted(detail.items()))),
    st.sampled_from(EventKind),
    st.dictionaries(codes, st.text(max_size=20) | st.integers(-(2**40), 2**40), max_size=4),
)

records = st.builds(
    Record,
    device=devices,
    seq=st.integers(1, 2**63 - 1),
    prev=hashes,
    time_ms=times,
    clock=st.sampled_from(ClockState),
    location=locations,
    body=taps() | events,
)


@st.composite
def chains(draw: st.DrawFn, min_size: int = 1, max_size: int = 12) -> list[EncodedRecord]:
    """A valid chain of one device from its genesis."""
    device = draw(devices)
    cursor = Cursor.start(device)
    entries = []
    for _ in range(draw(st.integers(min_size, max_size))):
        record = Record(
            device=device,
            seq=cursor.seq + 1,
            prev=cursor.head,
            time_ms=draw(times),
            clock=draw(st.sampled_from(ClockState)),
            location=draw(locations),
            body=draw(taps() | events),
        )
        entry = EncodedRecord.of(record)
        entries.append(entry)
        cursor = cursor.after(entry)
    return entries
