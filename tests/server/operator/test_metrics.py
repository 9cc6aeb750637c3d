"""/metrics speaks Prometheus's text format and counts what the ingest and auth paths saw."""

from __future__ import annotations

import re

import aiohttp

from farebox.protocol.checkpoint import Checkpoint, sign_checkpoint
from farebox.protocol.messages import Batch, encode_message
from farebox.server.http.metrics import Histogram
from tests.server.operator.conftest import Operator, records, sync
from tests.server.sync.conftest import CBOR, Device
from tests.support.records import accepted_tap, denied_tap

SAMPLE = re.compile(
    r'(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[a-zA-Z_]\w*="(?:[^"\\]|\\.)*"'
    r'(?:,[a-zA-Z_]\w*="(?:[^"\\]|\\.)*")*\})? (?P<value>-?[0-9.e+-]+|\+Inf|NaN)'
)


async def scrape(operator: Operator) -> dict[str, float]:
    """Every sample of /metrics by `name{labels}`; fail on any line that does not parse."""
    async with operator.http.get(f"{operator.url}metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            continue
        match = SAMPLE.fullmatch(line)
        assert match is not None, f"not a sample line: {line!r}"
        samples[match["name"] + (match["labels"] or "")] = float(match["value"])
    return samples


async def test_metrics_parse_and_count_batches_taps_refusals_and_gauges(
    operator: Operator, device: Device, http: aiohttp.ClientSession
) -> None:
    before = await scrape(operator)
    assert before['farebox_batches_total{outcome="ack"}'] == 0
    assert before["farebox_batch_seconds_count"] == 0
    journal = records(device, [accepted_tap(), denied_tap(), accepted_tap()], operator.clock())
    assert await sync(device, journal) == 200
    last = journal[-1]
    checkpoint = Checkpoint(device.id, last.record.seq, last.digest, operator.clock())
    again = encode_message(
        Batch(device.id, tuple(journal), sign_checkpoint(checkpoint, device.key))
    )
    status, _, _ = await device.request("POST", "/v1/batches", again)
    assert status == 200  # a re-sent batch: the same ack, nothing new
    gap = records(device, [accepted_tap()] * 2, operator.clock())[1:]
    assert await sync(device, gap) == 409
    async with http.post(f"{operator.url}v1/batches", data=again, headers=CBOR) as response:
        assert response.status == 401
    operator.clock.now_ms += 30_000

    samples = await scrape(operator)
    assert samples['farebox_batches_total{outcome="ack"}'] == 1
    assert samples['farebox_batches_total{outcome="duplicate"}'] == 1
    assert samples['farebox_batches_total{outcome="gap"}'] == 1
    assert samples["farebox_batch_seconds_count"] == 3
    assert samples['farebox_batch_seconds_bucket{le="+Inf"}'] == 3
    assert samples["farebox_taps_ingested_total"] == 3
    assert samples["farebox_records_ingested_total"] == 3
    assert samples['farebox_ledger_postings_total{kind="fare"}'] == 2
    assert samples['farebox_refusals_total{reason="gap"}'] == 1
    assert samples['farebox_refusals_total{reason="unsigned"}'] == 1
    assert samples["farebox_stoplist_size"] == 1  # the rider went below zero
    assert samples["farebox_taps_set_aside"] == 0
    assert samples[f'farebox_device_lag_seconds{{device="{device.id}"}}'] == 30


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7.0):
        histogram.observe(value)
    assert list(histogram.samples("h")) == [
        'h_bucket{le="0.1"} 2',
        'h_bucket{le="1"} 3',
        'h_bucket{le="+Inf"} 4',
        "h_sum 7.65",
        "h_count 4",
    ]
