"""How raw Jobs and pods become what the core decides on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bentham.controller.observe import job_sighting, pod_sighting
from bentham.core.sightings import PodSighting

FINISHED = datetime(2030, 1, 1, 12, tzinfo=UTC)


def job_body(*conditions: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "s-abcde-c3-a2",
            "labels": {"bentham.io/cell-index": "3", "bentham.io/attempt": "2"} if labels is None else labels,
        },
        "status": {"conditions": list(conditions)},
    }


def test_job_without_a_finished_condition_is_running() -> None:
    sighting = job_sighting(job_body({"type": "Complete", "status": "False"}))

    assert sighting is not None
    assert (sighting.name, sighting.cell_index, sighting.attempt, sighting.phase) == ("s-abcde-c3-a2", 3, 2, "running")


def test_complete_and_failed_jobs_carry_when_and_why() -> None:
    done = job_sighting(job_body({"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T12:00:00Z"}))
    failed = job_sighting(
        job_body(
            {
                "type": "Failed",
                "status": "True",
                "reason": "DeadlineExceeded",
                "lastTransitionTime": "2030-01-01T12:00:00Z",
            }
        )
    )

    assert done is not None and (done.phase, done.finished_at) == ("succeeded", FINISHED)
    assert failed is not None and (failed.phase, failed.failure_reason) == ("failed", "DeadlineExceeded")


def test_job_without_our_labels_is_not_ours() -> None:
    assert job_sighting(job_body(labels={})) is None
    assert job_sighting(job_body(labels={"bentham.io/cell-index": "x", "bentham.io/attempt": "1"})) is None
    assert job_sighting({}) is None


def test_pod_sighting_reads_the_executor_containers_termination_message() -> None:
    pod = {
        "metadata": {"labels": {"batch.kubernetes.io/job-name": "s-abcde-c3-a2"}},
        "status": {
            "containerStatuses": [
                {"name": "sidecar", "state": {"terminated": {"message": "not this one"}}},
                {"name": "executor", "state": {"terminated": {"message": '{"success": true}'}}},
            ]
        },
    }

    assert pod_sighting(pod) == PodSighting("s-abcde-c3-a2", terminated=True, message='{"success": true}')
    assert pod_sighting({"metadata": {"labels": {}}}) is None
