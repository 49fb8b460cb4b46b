"""Which Job events wake a study's worker: only those that change what the core would see."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, cast

from bentham.controller.kube import KubeClient
from bentham.controller.metrics import Metrics
from bentham.controller.webhook_sender import WebhookSender
from bentham.controller.workers import StudyWorker
from bentham.core.decision import ObservedJob


def sighting(name: str, phase: Literal["running", "succeeded", "failed"] = "running") -> ObservedJob:
    finished = datetime(2030, 1, 1, tzinfo=UTC) if phase != "running" else None
    return ObservedJob(
        name=name,
        cell_index=0,
        attempt=1,
        phase=phase,
        termination_message=None,
        failure_reason=None,
        finished_at=finished,
    )


def worker() -> StudyWorker:
    # saw_job() only compares sightings and sets the wake-up: it reaches neither the API nor the webhook sender.
    return StudyWorker(
        ("ns", "study"),
        kube=cast(KubeClient, None),
        webhooks=cast(WebhookSender, None),
        jobs=lambda key: (),
        metrics=Metrics(),
        batch_window_s=0.3,
        status_interval_s=5.0,
    )


def woken(study: StudyWorker) -> bool:
    was = study._wake.is_set()
    study._wake.clear()
    return was


def test_a_new_job_wakes_the_worker_and_the_job_controllers_bookkeeping_does_not() -> None:
    study = worker()

    study.saw_job(sighting("j1"))
    assert woken(study)

    for _ in range(4):  # active, ready, the pod's finalizer, ...: the same sighting each time
        study.saw_job(sighting("j1"))
    assert not woken(study)


def test_a_job_that_ends_wakes_the_worker_once() -> None:
    study = worker()
    study.saw_job(sighting("j1"))
    woken(study)

    study.saw_job(sighting("j1", "succeeded"))
    assert woken(study)
    study.saw_job(sighting("j1", "succeeded"))
    assert not woken(study)

    study.saw_job(sighting("j2", "failed"))  # a Job first seen already ended
    assert woken(study)
