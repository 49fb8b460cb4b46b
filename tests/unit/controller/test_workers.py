"""Which Job and pod events wake a study's worker (only those that change what the core sees), and what it reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal, cast

from bentham.controller.kube import KubeClient
from bentham.controller.metrics import Metrics
from bentham.controller.webhook_sender import WebhookSender
from bentham.controller.workers import PodSource, StudyWorker, nothing_brought
from bentham.core.decision import ObservedJob
from bentham.core.sightings import PodSighting


def sighting(
    name: str, phase: Literal["running", "succeeded", "failed"] = "running", uid: str | None = None
) -> ObservedJob:
    finished = datetime(2030, 1, 1, tzinfo=UTC) if phase != "running" else None
    return ObservedJob(
        name=name,
        cell_index=0,
        attempt=1,
        phase=phase,
        termination_message=None,
        failure_reason=None,
        finished_at=finished,
        uid=uid,
    )


def worker(ended_pods: PodSource = nothing_brought) -> StudyWorker:
    # saw_job() only compares sightings and sets the wake-up: it reaches neither the API nor the webhook sender.
    # No KubeClient: a test in which the worker would list pods fails on it.
    return StudyWorker(
        ("ns", "study"),
        kube=cast(KubeClient, None),
        webhooks=cast(WebhookSender, None),
        jobs=lambda key: (),
        metrics=Metrics(),
        batch_window_s=0.3,
        status_interval_s=5.0,
        ended_pods=ended_pods,
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


def test_a_pod_seen_ended_wakes_the_worker_only_if_it_waits_for_that_pod() -> None:
    study = worker()
    study.saw_pod("j1")  # a Job it has not seen: its own event will wake the worker
    assert not woken(study)

    study.saw_job(sighting("j1"))
    woken(study)
    study.saw_pod("j1")  # nearly always: the pod ends before the Job controller marks its Job
    assert not woken(study)

    study.saw_job(sighting("j1", "succeeded"))
    woken(study)
    study.saw_pod("j1")  # the Job was seen finished first: its pass waits for this message
    assert woken(study)


def test_a_finished_jobs_message_brought_by_the_pod_watch_is_read_without_a_list() -> None:
    brought = {"uid-1": PodSighting("j1", terminated=True, message="m1")}
    study = worker(ended_pods=brought.get)
    jobs = [sighting("j1", "succeeded", uid="uid-1"), sighting("j2", uid="uid-2")]

    asyncio.run(study._read_messages("ns", jobs))  # no KubeClient: a list would raise

    assert study._messages == {"j1": PodSighting("j1", terminated=True, message="m1")}
