"""When a finished Job's attempt may be judged: with its pod's message, or after a grace period without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bentham.core.decision import ObservedJob
from bentham.core.sightings import POD_GRACE, PodSighting, observed_jobs

FINISHED = datetime(2030, 1, 1, 12, tzinfo=UTC)


def finished_job(failure_reason: str | None = None) -> ObservedJob:
    if failure_reason is not None:
        return ObservedJob("s-abcde-c3-a2", 3, 2, "failed", None, failure_reason, FINISHED)
    return ObservedJob("s-abcde-c3-a2", 3, 2, "succeeded", None, None, FINISHED)


def test_finished_job_waits_for_its_pods_message_but_not_forever() -> None:
    job = finished_job()

    [soon] = observed_jobs([job], {}, FINISHED + timedelta(seconds=1))
    [later] = observed_jobs([job], {}, FINISHED + POD_GRACE)
    [seen] = observed_jobs([job], {job.name: PodSighting(job.name, True, "hello")}, FINISHED)

    assert soon.phase == "running"
    assert (later.phase, later.termination_message) == ("succeeded", None)
    assert (seen.phase, seen.termination_message) == ("succeeded", "hello")


def test_a_job_stopped_at_its_deadline_is_judged_at_once() -> None:
    job = finished_job("DeadlineExceeded")

    [judged] = observed_jobs([job], {}, FINISHED + timedelta(seconds=1))

    assert (judged.phase, judged.failure_reason) == ("failed", "DeadlineExceeded")


def test_a_pod_seen_but_not_ended_does_not_end_the_grace() -> None:
    job = finished_job()

    [soon] = observed_jobs([job], {job.name: PodSighting(job.name, False, None)}, FINISHED + timedelta(seconds=1))

    assert soon.phase == "running"
