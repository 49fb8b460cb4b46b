"""The manifest's execution block on the real control plane (issue 15): per-surface concurrency, order, backoff."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any

from bench.operator_process import OperatorProcess
from tests.support import Cluster, Studies, failing_pod_template, kwok_stage, study

TIMEOUT = {
    "success": False,
    "responseLength": 0,
    "isActualContent": False,
    "responseTimeMs": 10,
    "error": {"code": "TIMEOUT", "message": "took too long", "retryable": True},
}


def finished(job: Any) -> bool:
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions or [])


class JobSampler:
    """Lists a study's Jobs every 100 ms in a thread: each sample's unfinished Jobs by surface, and first sightings."""

    def __init__(self, studies: Studies, uid: str) -> None:
        self.studies, self.uid = studies, uid
        self.most_unfinished: Counter[str] = Counter()
        self.first_seen: dict[str, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        sample = 0
        while not self._stop.is_set():
            jobs = self.studies.batch.list_namespaced_job(
                self.studies.namespace, label_selector=f"bentham.io/study-uid={self.uid}"
            ).items
            unfinished = Counter(j.metadata.labels["bentham.io/surface"] for j in jobs if not finished(j))
            for surface, count in unfinished.items():
                self.most_unfinished[surface] = max(self.most_unfinished[surface], count)
            for job in jobs:
                self.first_seen.setdefault(job.metadata.name, (sample, job.metadata.labels["bentham.io/surface"]))
            sample += 1
            time.sleep(0.1)


def test_concurrency_per_surface_caps_each_surfaces_unfinished_jobs(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    body = study(
        "per-surface",
        required=("openai-api", "anthropic-api", "perplexity-api"),
        queries=4,
        locations=("us-nyc", "uk-lon"),
        parallelism=10,
        pod_annotations={"sim.bentham.io/duration": "1s"},
        execution={"concurrencyPerSurface": 2},
    )
    uid = studies.create(body)["metadata"]["uid"]
    with JobSampler(studies, uid) as sampler:
        status = studies.wait_for_state("per-surface", "complete", "failed", timeout_s=180)
    assert status["state"] == "complete", status.get("message")
    assert status["progress"]["completedCells"] == 24
    assert set(sampler.most_unfinished) == {"openai-api", "anthropic-api", "perplexity-api"}
    assert max(sampler.most_unfinished.values()) == 2, sampler.most_unfinished


def test_surface_first_starts_one_surfaces_cells_before_the_next(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    body = study(
        "surface-first",
        required=("openai-api", "grok"),
        queries=2,
        locations=("us-nyc", "uk-lon"),
        parallelism=2,
        pod_annotations={"sim.bentham.io/duration": "1s"},
        execution={"executionOrder": "surface-first"},
    )
    uid = studies.create(body)["metadata"]["uid"]
    with JobSampler(studies, uid) as sampler:
        status = studies.wait_for_state("surface-first", "complete", "failed", timeout_s=120)
    assert status["state"] == "complete", status.get("message")
    seen = sampler.first_seen.values()
    assert len(seen) == 8
    assert max(n for n, s in seen if s == "openai-api") <= min(n for n, s in seen if s == "grok"), sorted(seen)


def test_linear_backoff_without_jitter_spaces_a_cells_attempts(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    body = study(
        "linear",
        queries=1,
        locations=("us-nyc",),
        execution={"retry": {"maxRetries": 2, "backoffStrategy": "linear", "initialDelayMs": 2000, "jitter": False}},
    )
    created: dict[int, datetime] = {}
    with kwok_stage(cluster, namespace, {"bentham.io/study": "linear"}, failing_pod_template(TIMEOUT)):
        uid = studies.create(body)["metadata"]["uid"]
        deadline = time.monotonic() + 90
        while len(created) < 3 and time.monotonic() < deadline:
            for job in studies.batch.list_namespaced_job(namespace, label_selector=f"bentham.io/study-uid={uid}").items:
                created.setdefault(int(job.metadata.labels["bentham.io/attempt"]), job.metadata.creation_timestamp)
            time.sleep(0.1)
        status = studies.wait_for_state("linear", "complete", "failed", timeout_s=60)
    assert sorted(created) == [1, 2, 3], created
    assert (created[2] - created[1]).total_seconds() >= 2  # linear: 2 s after the first failure,
    assert (created[3] - created[2]).total_seconds() >= 4  # then 4 s after the second
    assert status["state"] == "failed"  # one required cell out of its 3 attempts
