"""What the operator sees of its Jobs and their pods, reduced to what the core needs.

kopf indexes every Job labelled with a study's uid (see `handlers`) and a study's worker lists its
ended pods (see `workers`); these pure functions turn one raw object into a small sighting
(`core.sightings` joins a study's sightings into the `ObservedJob`s the core decides on). Keeping
only sightings, not whole objects, keeps memory flat at 10,000 cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from bentham.core.decision import ObservedJob
from bentham.core.jobs import CONTAINER_NAME, LABEL_ATTEMPT, LABEL_CELL_INDEX
from bentham.core.sightings import PodSighting
from bentham.core.timestamps import read_rfc3339

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


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
            phase, finished_at = "succeeded", read_rfc3339(condition.get("lastTransitionTime"))
        elif condition.get("type") == "Failed":
            phase, finished_at = "failed", read_rfc3339(condition.get("lastTransitionTime"))
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


def created_at(metadata: Mapping[str, Any]) -> datetime | None:
    """When the API server created the object, from its metadata; None when it does not say."""
    return read_rfc3339(metadata.get("creationTimestamp"))
