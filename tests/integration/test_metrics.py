"""The Prometheus endpoint, scraped while a study runs and after it ends."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.operator_process import start_operator
from tests.support import Cluster, Studies, eventually, study

REPO = Path(__file__).resolve().parents[2]


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scraped_once(port: int, ready: Callable[[Samples], bool]) -> Callable[[], Samples | None]:
    """A probe for `eventually`: the scraped samples, once `ready` holds of them."""

    def probe() -> Samples | None:
        samples = scrape(port)
        return samples if ready(samples) else None

    return probe


def test_metrics_count_a_study_while_it_runs_and_after(cluster: Cluster, unwatched_namespace: str) -> None:
    studies = Studies(cluster, unwatched_namespace)
    operator = start_operator(
        cluster.kubeconfig,
        REPO / ".cluster" / "logs" / f"operator-{unwatched_namespace}.log",
        "--namespace",
        unwatched_namespace,
        serve_metrics=True,
    )
    assert operator.metrics_port is not None
    port = operator.metrics_port
    try:
        studies.create(
            study(
                "scraped",
                queries=6,
                locations=("us-nyc", "uk-lon"),
                parallelism=4,
                pod_annotations={"sim.bentham.io/duration": "1s"},
            )
        )
        during = eventually(
            scraped_once(port, lambda m: m.get(("bentham_live_jobs", ()), 0) > 0), what="live Jobs in the metrics"
        )
        assert during[("bentham_live_jobs", ())] <= 4
        assert during[("bentham_studies", (("state", "executing"),))] == 1
        studies.wait_for_state("scraped", "complete")

        after = eventually(
            scraped_once(port, lambda m: m[("bentham_studies", (("state", "complete"),))] == 1),
            what="the completed study in the metrics",
        )
    finally:
        operator.stop()

    assert after[("bentham_cells_started_total", ())] == 12
    assert after[("bentham_cells_completed_total", ())] == 12
    assert after[("bentham_cells_failed_total", ())] == 0
    assert after[("bentham_cells_retried_total", ())] == 0
    assert after[("bentham_studies_at_risk", ())] == 0
    assert 0 < after[("bentham_status_writes_total", ())] <= 12
    assert after[("bentham_reconcile_duration_seconds_count", ())] > 0
    assert after[("bentham_notification_failures_total", ())] == 0
