"""What the operator sees of its Jobs and their pods, reduced to what the core needs.

kopf indexes every Job and pod labelled with a study (see `handlers`); these pure functions turn
one raw object into a small sighting, and join a study's sightings into the `ObservedJob`s the
core decides on. Keeping only sightings, not whole objects, keeps memory flat at 10,000 cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from bentham.core.jobs import CONTAINER_NAME, LABEL_ATTEMPT, LABEL_CELL_INDEX
from bentham.core.reconcile import ObservedJob

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

# How long a finished Job may wait for its pod's termination message to be seen before the
# attempt is judged without it: the Job and pod watches are separate streams.
POD_GRACE = timedelta(seconds=15)


@dataclass(frozen=True)
class JobSighting:
    name: str
    cell_index: int
    attempt: int
    phase: Literal["running", "succeeded", "failed"]
    failure_reason: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class PodSighting:
    job_name: str
    terminated: bool
    message: str | None


def job_sighting(body: Mapping[str, Any]) -> JobSighting | None:
    """A Job of ours, or None for one without our labels (never raises on odd objects)."""
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
    return JobSighting(str(metadata.get("name")), cell_index, attempt, phase, failure_reason, finished_at)


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


def observed_jobs(jobs: Iterable[JobSighting], pods: Mapping[str, PodSighting], now: datetime) -> list[ObservedJob]:
    """Joins a study's Jobs with their pods' termination messages.

    A finished Job whose pod has not yet been seen terminated is reported as still running for
    up to POD_GRACE, so that its result is never judged from a message that is merely late.
    """
    observed = []
    for job in jobs:
        pod = pods.get(job.name)
        phase = job.phase
        message = pod.message if pod and pod.terminated else None
        if phase != "running" and not (pod and pod.terminated):
            waited = now - job.finished_at if job.finished_at else POD_GRACE
            if waited < POD_GRACE and job.failure_reason != "DeadlineExceeded":
                phase = "running"
        observed.append(ObservedJob(
            name=job.name, cell_index=job.cell_index, attempt=job.attempt, phase=phase,
            termination_message=message, failure_reason=job.failure_reason, finished_at=job.finished_at,
        ))
    return observed


def parse_timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it, or None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
