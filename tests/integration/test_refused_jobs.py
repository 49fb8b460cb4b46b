"""Jobs the API server refuses: a quota waits and shows why, an invalid Job fails its attempt, a taken name is not ours.

Each test uses the session's operator and a namespace of its own; what refuses the Job is the
real API server (a ResourceQuota, its validation, a Job created beforehand under the name).
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from bench.operator_process import OperatorProcess
from bentham.api.status import Checkpoint
from bentham.core.checkpoint import CellState, read_records
from bentham.core.jobs import job_name
from tests.support import Cluster, Studies, eventually, study


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)


def events(cluster: Cluster, namespace: str, name: str, reason: str) -> list[client.CoreV1Event]:
    found = client.CoreV1Api(cluster.api).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return [event for event in found.items if event.reason == reason]


def cells(status: dict[str, Any]) -> list[tuple[CellState, int]]:
    records = read_records(Checkpoint.model_validate(status["checkpoint"]))
    assert records is not None
    return [(record.state, record.attempts) for record in records]


def test_a_quota_that_allows_no_jobs_shows_why_at_once_and_the_study_completes_once_it_is_lifted(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    core = client.CoreV1Api(cluster.api)
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-jobs"), spec=client.V1ResourceQuotaSpec(hard={"count/jobs.batch": "0"})
    )
    core.create_namespaced_resource_quota(namespace, quota)
    eventually(  # the quota admits nothing at all until its controller has counted what is there
        lambda: (core.read_namespaced_resource_quota("no-jobs", namespace).status.hard or {}).get("count/jobs.batch"),
        what="the quota to be counted",
    )
    studies = Studies(cluster, namespace)
    studies.create(study("quota", queries=1, locations=("us-nyc", "uk-lon"), max_retries=2))
    created = time.monotonic()

    shown = eventually(
        lambda: (c := condition(studies.status("quota"), "JobsRejected")) and c["status"] == "True" and c,
        timeout_s=20,
        what="the JobsRejected condition",
    )
    shown_after = time.monotonic() - created
    assert shown["reason"] == "QuotaExceeded"
    assert "exceeded quota: no-jobs" in shown["message"] and "count/jobs.batch" in shown["message"]
    [event] = eventually(lambda: events(cluster, namespace, "quota", "QuotaExceeded"), what="the Event")
    assert event.type == "Warning" and "exceeded quota: no-jobs" in event.message
    assert shown_after < 10, f"the condition took {shown_after:.1f}s"

    time.sleep(15)  # longer than the retry interval: the Jobs are asked for again, no attempt is spent
    waiting = studies.status("quota")
    assert waiting["state"] == "executing"
    assert cells(waiting) == [(CellState.RUNNING, 1), (CellState.RUNNING, 1)]
    assert len(events(cluster, namespace, "quota", "QuotaExceeded")) == 1  # announced once, not every pass

    core.delete_namespaced_resource_quota("no-jobs", namespace)
    status = studies.wait_for_state("quota", "complete", "failed", timeout_s=90)
    assert status["state"] == "complete", status.get("message")
    assert cells(status) == [(CellState.COMPLETED, 1), (CellState.COMPLETED, 1)]
    cleared = condition(status, "JobsRejected")
    assert cleared is not None and cleared["status"] == "False"


def test_a_job_the_api_server_finds_invalid_fails_its_attempt_as_job_rejected_without_a_retry(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    body = study("invalid", queries=1, locations=("us-nyc",), max_retries=3)
    # Our validation passes it to the Job; the API server allows any printable name but one with '='.
    body["spec"]["executor"]["env"] = [{"name": "MODE=FAST", "value": "1"}]
    studies.create(body)

    status = studies.wait_for_state("invalid", "failed", "complete", timeout_s=30)
    assert status["state"] == "failed"
    assert cells(status) == [(CellState.FAILED, 1)]  # one attempt, not retried
    rejected = condition(status, "JobsRejected")
    assert rejected is not None and rejected["status"] == "True" and rejected["reason"] == "JobRejected"
    assert "MODE=FAST" in rejected["message"] and "is invalid" in rejected["message"]
    [failed] = eventually(lambda: events(cluster, namespace, "invalid", "CellsFailed"), what="CellsFailed")
    assert "JobRejected" in failed.message and "MODE=FAST" in failed.message
    assert len(eventually(lambda: events(cluster, namespace, "invalid", "JobRejected"), what="the Event")) == 1
    assert studies.jobs("invalid") == []


def test_a_squatted_job_name_fails_that_attempt_and_the_next_attempt_completes_the_cell(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    body = study("squat", queries=1, locations=("us-nyc",), max_retries=3)
    body["spec"]["paused"] = True  # so that its first Job's name, which needs its uid, can be taken first
    uid = studies.create(body)["metadata"]["uid"]
    taken = job_name("squat", uid, 0, 1)
    squatter = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": taken, "labels": {"app": "squatter"}},
        "spec": {
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
        },
    }
    client.BatchV1Api(cluster.api).create_namespaced_job(namespace, squatter)
    studies.patch_spec("squat", {"paused": False})

    status = studies.wait_for_state("squat", "complete", "failed", timeout_s=60)
    assert status["state"] == "complete", status.get("message")
    assert cells(status) == [(CellState.COMPLETED, 2)]  # the first attempt failed on the taken name
    [event] = events(cluster, namespace, "squat", "JobNameTaken")
    assert taken in event.message and "bentham.io/study-uid" in event.message
    retried = eventually(lambda: events(cluster, namespace, "squat", "CellsRetrying"), what="CellsRetrying")
    assert any("JobNameTaken" in e.message for e in retried)
    still_there = client.BatchV1Api(cluster.api).read_namespaced_job(taken, namespace)
    assert still_there.metadata.labels == {"app": "squatter"}  # never ours to delete or adopt
