"""What the operator sees of its Jobs and their pods, reduced to what the core needs.

kopf indexes every Job labelled with a study (see `handlers`) and a study's worker lists its ended
pods (see `workers`); these pure functions turn one raw object into a small sighting, and join a
study's sightings into the `ObservedJob`s the core decides on. Keeping only sightings, not whole
objects, keeps memory flat at 10,000 cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from bentham.core.jobs import CONTAINER_NAME, LABEL_ATTEMPT, LABEL_CELL_INDEX
from bentham.core.reconcile import ObservedJob

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

# How long a finished Job may wait for its pod's termination message to be seen before the
# attempt is judged without it: a Job can be seen finished before its pod is listed as ended.
POD_GRACE = timedelta(seconds=15)


@dataclass(frozen=True)
class PodSighting:
    job_name: str
    terminated: bool
    message: str | None


def job_sighting(body: Mapping[str, Any]) -> ObservedJob | None:
    """A Job of ours as the core sees it, its pod's message still unknown; None for one without our labels."""
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    try:
        cell_index = int(labels[LABEL_CELL_INDEX])
        attempt = int(labels[LABEL_ATTEMPT])
    except (KeyError, TypeError, ValueError):
        return None
    phase: Literal["running", "succeeded", "failed"] = "running"
    failure_reason = None
    finished_at = None
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            phase, finished_at = "succeeded", parse_timestamp(condition.get("lastTransitionTime"))
        elif condition.get("type") == "Failed":
            phase, finished_at = "failed", parse_timestamp(condition.get("lastTransitionTime"))
            failure_reason = condition.get("reason")
    return ObservedJob(
        name=str(metadata.get("name")),
        cell_index=cell_index,
        attempt=attempt,
        phase=phase,
        termination_message=None,
        failure_reason=failure_reason,
        finished_at=finished_at,
    )


def pod_sighting(body: Mapping[str, Any]) -> PodSighting | None:
    """The executor container's end, if the pod belongs to one of our Jobs."""
    metadata = body.get("metadata") or {}
    job_name = (metadata.get("labels") or {}).get(JOB_NAME_LABEL)
    if not job_name:
        return None
    for status in (body.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != CONTAINER_NAME:
            continue
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return PodSighting(str(job_name), terminated=True, message=terminated.get("message"))
    return PodSighting(str(job_name), terminated=False, message=None)


def observed_jobs(jobs: Iterable[ObservedJob], pods: Mapping[str, PodSighting], now: datetime) -> list[ObservedJob]:
    """A study's Jobs with their pods' termination messages filled in.

    A finished Job whose pod has not yet been seen terminated is reported as still running for
    up to POD_GRACE, so that its result is never judged from a message that is merely late.
    """
    observed = []
    for job in jobs:
        pod = pods.get(job.name)
        if pod is not None and pod.terminated:
            observed.append(replace(job, termination_message=pod.message))
            continue
        waited = now - job.finished_at if job.finished_at else POD_GRACE
        late = job.phase != "running" and waited < POD_GRACE and job.failure_reason != "DeadlineExceeded"
        observed.append(replace(job, phase="running") if late else job)
    return observed


def parse_timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it, or None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
