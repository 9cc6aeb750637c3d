"""The server's Prometheus metrics, in the text exposition format (version 0.0.4).

One `Metrics` object lives on each application's state, so two apps in one process (the
tests run many) never share counts. The ingest and authentication paths count into it;
gauges that the books already know (stoplist size, parked fare days, taps set aside,
device lag, journal depth) are read from the store when `/metrics` is scraped, so every
server process sharing one PostgreSQL reports the same values for them.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from farebox.server.sync.ingest import Ingested
from farebox.server.sync.reports import SyncLag

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds in seconds of the batch latency histogram: a batch is a few ms to seconds."""
BATCH_OUTCOMES = ("ack", "duplicate", "gap", "fork", "bad_signature")


class Histogram:
    """Observations counted into fixed buckets, with their sum."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def samples(self, name: str) -> Iterable[str]:
        total = 0
        for bound, count in zip((*map(_number, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            yield f'{name}_bucket{{le="{bound}"}} {total}'
        yield f"{name}_sum {_number(self.sum)}"
        yield f"{name}_count {total}"


@dataclass(frozen=True, slots=True)
class Gauges:
    """What the books know, read from the store at each scrape."""

    stoplist_size: int
    parked_days: int
    taps_set_aside: int
    lags: Sequence[SyncLag]


class Metrics:
    """Counts of one server process since it started."""

    def __init__(self) -> None:
        self.taps = 0
        self.records = 0
        self.postings: Counter[str] = Counter()
        self.batches: Counter[str] = Counter(dict.fromkeys(BATCH_OUTCOMES, 0))
        self.refusals: Counter[str] = Counter()
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.settled_days = 0

    def batch(self, ingested: Ingested, seconds: float) -> None:
        """A batch answered: its outcome, what it added, how long it took."""
        self.batches[ingested.outcome] += 1
        self.taps += ingested.taps
        self.records += ingested.records
        self.postings["fare"] += ingested.postings
        self.batch_seconds.observe(seconds)
        if ingested.outcome not in ("ack", "duplicate"):
            self.refusals[ingested.outcome] += 1

    def refusal(self, code: str) -> None:
        """A device request refused, by its problem code (401 codes, malformed bodies)."""
        self.refusals[code] += 1

    def render(self, gauges: Gauges) -> str:
        """The exposition text, with the gauges read from the store for this scrape."""
        lags = gauges.lags
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> None:
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples))

        family(
            "farebox_taps_ingested_total", "counter",
            "Taps (accepted and denied) stored from device batches.",
            [f"farebox_taps_ingested_total {self.taps}"],
        )  # fmt: skip
        family(
            "farebox_records_ingested_total", "counter",
            "Journal records (taps and device events) stored from device batches.",
            [f"farebox_records_ingested_total {self.records}"],
        )  # fmt: skip
        family(
            "farebox_batches_total", "counter", "Batches answered, by outcome.",
            _labelled("farebox_batches_total", "outcome", self.batches),
        )  # fmt: skip
        family(
            "farebox_batch_seconds", "histogram",
            "Time from a batch's arrival to its answer, in seconds.",
            self.batch_seconds.samples("farebox_batch_seconds"),
        )  # fmt: skip
        family(
            "farebox_ledger_postings_total", "counter",
            "Transfers this process posted to the ledger, by kind.",
            _labelled("farebox_ledger_postings_total", "kind", self.postings),
        )  # fmt: skip
        family(
            "farebox_refusals_total", "counter",
            "Device requests and batches refused, by problem or refusal code.",
            _labelled("farebox_refusals_total", "reason", self.refusals),
        )  # fmt: skip
        family(
            "farebox_settled_days_total", "counter",
            "Rider fare days settled by this process's settlement task.",
            [f"farebox_settled_days_total {self.settled_days}"],
        )  # fmt: skip
        family(
            "farebox_stoplist_size", "gauge", "Tokens on the stoplist.",
            [f"farebox_stoplist_size {gauges.stoplist_size}"],
        )  # fmt: skip
        family(
            "farebox_parked_fare_days", "gauge",
            "Rider fare days settlement could not rate, parked until a tap or tariff changes them.",
            [f"farebox_parked_fare_days {gauges.parked_days}"],
        )  # fmt: skip
        family(
            "farebox_taps_set_aside", "gauge",
            "Accepted taps stored but not posted, until taps repost posts them.",
            [f"farebox_taps_set_aside {gauges.taps_set_aside}"],
        )  # fmt: skip
        family(
            "farebox_device_lag_seconds", "gauge",
            "Seconds since each device's last accepted batch (devices that synced).",
            _labelled(
                "farebox_device_lag_seconds", "device",
                {lag.device: lag.lag_ms / 1000 for lag in lags if lag.lag_ms is not None},
            ),
        )  # fmt: skip
        family(
            "farebox_device_journal_depth", "gauge",
            "Records waiting on each device, from its latest heartbeat.",
            _labelled(
                "farebox_device_journal_depth", "device",
                {lag.device: lag.journal_depth for lag in lags if lag.journal_depth is not None},
            ),
        )  # fmt: skip
        return "\n".join(lines) + "\n"


def _labelled(name: str, label: str, values: Mapping[str, float]) -> list[str]:
    return [f'{name}{{{label}="{_escape(key)}"}} {_number(values[key])}' for key in sorted(values)]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
