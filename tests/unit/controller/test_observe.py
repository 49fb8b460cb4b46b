"""How raw Jobs and pods become what the core decides on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bentham.controller.observe import job_sighting, pod_items, pod_sighting
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


def test_a_job_whose_numbers_are_not_written_as_the_operator_writes_them_is_not_ours() -> None:
    """The operator deletes its Jobs by selecting these labels: a Job it could not select is not one of its own."""
    for cell, attempt in [("03", "2"), ("3", "+2"), ("3", "2.0"), ("-3", "2"), ("٣", "2")]:
        assert job_sighting(job_body(labels={"bentham.io/cell-index": cell, "bentham.io/attempt": attempt})) is None
    assert job_sighting(job_body(labels={"bentham.io/cell-index": "0", "bentham.io/attempt": "10"})) is not None


JOB_UID = "0b0e1d5c-0000-4000-8000-000000000001"
OUR_JOBS = {"s-abcde-c3-a2": JOB_UID}


def pod_body(owner: dict[str, Any] | None, message: str = '{"success": true}') -> dict[str, Any]:
    """An ended pod carrying every label of the Job's pods, controlled by `owner` (None: no owner at all)."""
    return {
        "metadata": {
            "labels": {
                "batch.kubernetes.io/job-name": "s-abcde-c3-a2",
                "batch.kubernetes.io/controller-uid": JOB_UID,
                "bentham.io/study-uid": "study-uid",
            },
            "ownerReferences": [owner] if owner is not None else [],
        },
        "status": {
            "containerStatuses": [
                {"name": "sidecar", "state": {"terminated": {"message": "not this one"}}},
                {"name": "executor", "state": {"terminated": {"message": message}}},
            ]
        },
    }


def job_owner(uid: str = JOB_UID, **changes: Any) -> dict[str, Any]:
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "s-abcde-c3-a2", "uid": uid, "controller": True}
    owner.update(changes)
    return owner


def test_pod_sighting_reads_the_executor_containers_termination_message() -> None:
    assert pod_sighting(pod_body(job_owner()), OUR_JOBS) == PodSighting(
        "s-abcde-c3-a2", terminated=True, message='{"success": true}'
    )
    running = pod_body(job_owner())
    running["status"]["containerStatuses"] = [{"name": "executor", "state": {"running": {}}}]
    assert pod_sighting(running, OUR_JOBS) == PodSighting("s-abcde-c3-a2", terminated=False, message=None)


def test_a_pod_with_our_labels_but_not_controlled_by_the_job_is_not_its_pod() -> None:
    assert pod_sighting(pod_body(None), OUR_JOBS) is None  # labels alone, the Job's uid label included
    assert pod_sighting(pod_body(job_owner(uid="forged-uid")), OUR_JOBS) is None
    assert pod_sighting(pod_body(job_owner(controller=False)), OUR_JOBS) is None
    assert pod_sighting(pod_body(job_owner(kind="ReplicaSet", apiVersion="apps/v1")), OUR_JOBS) is None
    assert pod_sighting(pod_body(job_owner(name="s-abcde-c3-a1")), {"s-abcde-c3-a1": "another-uid"}) is None
    assert pod_sighting(pod_body(job_owner()), {}) is None  # a Job that is not this study's
    assert pod_sighting(pod_body(job_owner()), {"s-abcde-c3-a2": None}) is None  # a Job whose uid is unknown
    assert pod_sighting({"metadata": {"labels": {}}}, OUR_JOBS) is None


def test_a_job_sighting_carries_the_jobs_uid_but_compares_without_it() -> None:
    body = job_body()
    body["metadata"]["uid"] = JOB_UID
    seen = job_sighting(body)
    assert seen is not None and seen.uid == JOB_UID
    assert seen == job_sighting(job_body())  # the sighting of a Job about to be created has no uid yet


def full_pod(terminated: dict[str, Any]) -> dict[str, Any]:
    """An ended pod as the API server lists it: much more than a sighting reads."""
    pod = pod_body(job_owner())
    pod["metadata"].update(name="s-abcde-c3-a2-x7k2p", managedFields=[{"manager": "kube-controller-manager"}] * 3)
    pod["spec"] = {"containers": [{"name": "executor", "env": [{"name": f"V{i}", "value": "x"} for i in range(20)]}]}
    pod["status"].update(phase="Succeeded", conditions=[{"type": "Ready", "status": "False"}])
    pod["status"]["containerStatuses"][1]["state"]["terminated"] = terminated
    return pod


def list_answer(*pods: dict[str, Any]) -> bytes:
    return json.dumps({"kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": list(pods)}).encode()


def test_a_pod_list_is_read_for_what_a_sighting_needs_and_sighted_as_if_read_whole() -> None:
    done = {"exitCode": 0, "reason": "Completed", "message": '{"success": true}', "startedAt": "2030-01-01T12:00:00Z"}
    bare = {"exitCode": 137, "reason": "OOMKilled"}  # no message: still terminated
    answer = list_answer(full_pod(done), full_pod(bare))

    pods = pod_items(answer)

    whole = json.loads(answer)["items"]
    assert [pod_sighting(pod, OUR_JOBS) for pod in pods] == [pod_sighting(pod, OUR_JOBS) for pod in whole]
    assert [pod_sighting(pod, OUR_JOBS) for pod in pods] == [
        PodSighting("s-abcde-c3-a2", terminated=True, message='{"success": true}'),
        PodSighting("s-abcde-c3-a2", terminated=True, message=None),
    ]
    assert pods[0]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "s-abcde-c3-a2"
    assert "spec" not in pods[0] and "managedFields" not in pods[0]["metadata"]


def test_a_pod_list_of_a_shape_the_typed_reading_does_not_expect_is_read_whole() -> None:
    odd = full_pod({"exitCode": "none at all", "message": '{"success": true}'})

    pods = pod_items(list_answer(odd))

    assert "spec" in pods[0]  # decoded whole
    assert pod_sighting(pods[0], OUR_JOBS) == PodSighting("s-abcde-c3-a2", terminated=True, message='{"success": true}')
    assert pod_items(b'{"kind": "Status"}') == [] and pod_items(b"[]") == []
