"""The operator's Prometheus metrics.

Counters are bumped where things happen (a Job created, a status written); gauges that describe
the whole operator (studies by state, live Jobs, studies at risk) are computed at scrape time
from the workers, so they can never drift from what the operator actually holds.
"""

from __future__ import annotations

import platform
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bentham import __version__
from bentham.api.status import StudyState


@dataclass(frozen=True)
class StudyGauges:
    """What one study contributes to the operator-wide gauges."""

    state: str | None
    at_risk: bool
    live_jobs: int


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.build_info = Gauge(
            "bentham_build_info",
            "Always 1; the labels say which operator version runs on which Python.",
            ["version", "python"],
            registry=self.registry,
        )
        self.build_info.labels(version=__version__, python=platform.python_version()).set(1)
        self.cells_started = Counter(
            "bentham_cells_started", "Attempts started (Jobs created).", registry=self.registry
        )
        self.cells_retried = Counter(
            "bentham_cells_retried", "Attempts started after a failed attempt of the same cell.", registry=self.registry
        )
        self.cells_completed = Counter(
            "bentham_cells_completed", "Cells whose result passed the quality gates.", registry=self.registry
        )
        self.cells_failed = Counter("bentham_cells_failed", "Cells that failed for good.", registry=self.registry)
        self.status_writes = Counter("bentham_status_writes", "Study status writes.", registry=self.registry)
        self.notification_failures = Counter(
            "bentham_notification_failures",
            "Webhook notifications given up on after every retry.",
            registry=self.registry,
        )
        self.job_watch_lists = Counter(
            "bentham_job_watch_lists",
            "Full lists of the studies' Jobs: one per watch stream at start, and one each time a watch cannot resume.",
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "bentham_reconcile_duration_seconds",
            "Time to observe, decide and apply one study.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def watch_studies(self, studies: Callable[[], Iterable[StudyGauges]]) -> None:
        """Computes the operator-wide gauges from `studies` at every scrape."""
        self.registry.register(_StudyCollector(studies))

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        start_http_server(port, addr=address, registry=self.registry)


class _StudyCollector(Collector):
    def __init__(self, studies: Callable[[], Iterable[StudyGauges]]) -> None:
        self._studies = studies

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauges = list(self._studies())
        by_state = Tally(g.state or "unknown" for g in gauges)
        studies = GaugeMetricFamily("bentham_studies", "Studies by lifecycle state.", labels=["state"])
        for state in [s.value for s in StudyState]:
            studies.add_metric([state], by_state.get(state, 0))
        yield studies
        yield GaugeMetricFamily(
            "bentham_studies_at_risk", "Studies projected to miss their deadline.", value=sum(g.at_risk for g in gauges)
        )
        yield GaugeMetricFamily(
            "bentham_live_jobs", "Jobs of attempts not yet recorded.", value=sum(g.live_jobs for g in gauges)
        )
