"""What the operator sees of its Jobs and their pods, reduced to what the core needs.

The Job watch indexes every Job labelled with a study's uid (`job_watch`, `job_index`) and a
study's worker lists its ended pods (`workers`); these pure functions turn one raw object into a small sighting
(`core.sightings` joins a study's sightings into the `ObservedJob`s the core decides on). Keeping
only sightings, not whole objects, keeps memory flat at 10,000 cells.

A pod counts for a Job only when the Job controls it: its controller ownerReference names the
Job by uid, as the Job controller sets it. Labels are anyone's to write, so a pod a tenant
creates with our labels (and the Job's name) never speaks for a cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json
from typing_extensions import TypedDict

from bentham.core.decision import ObservedJob
from bentham.core.jobs import CONTAINER_NAME, LABEL_ATTEMPT, LABEL_CELL_INDEX
from bentham.core.sightings import PodSighting
from bentham.core.timestamps import read_rfc3339

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def job_sighting(body: Mapping[str, Any]) -> ObservedJob | None:
    """A Job of ours as the core sees it, its pod's message still unknown; None for one without our labels."""
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    cell_index, attempt = _number(labels.get(LABEL_CELL_INDEX)), _number(labels.get(LABEL_ATTEMPT))
    if cell_index is None or attempt is None:
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
        uid=metadata.get("uid"),
    )


def _number(label: Any) -> int | None:
    """A number label as the operator writes it ("7", never "07"), so that a selector of its value finds its Job."""
    return (
        int(label)
        if isinstance(label, str) and label.isascii() and label.isdigit() and str(int(label)) == label
        else None
    )


class _Owner(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool


class _PodMetadata(TypedDict, total=False):
    name: str
    labels: dict[str, str]
    ownerReferences: list[_Owner]


class _Terminated(TypedDict, total=False):
    exitCode: int  # always there: a terminated state is never read as empty
    reason: str
    message: str


class _State(TypedDict, total=False):
    terminated: _Terminated


class _ContainerStatus(TypedDict, total=False):
    name: str
    state: _State


class _PodStatus(TypedDict, total=False):
    containerStatuses: list[_ContainerStatus]


class _Pod(TypedDict, total=False):
    metadata: _PodMetadata
    status: _PodStatus


class _PodList(TypedDict, total=False):
    items: list[_Pod]


_POD_LIST = TypeAdapter(_PodList)


def pod_items(answer: bytes) -> list[Any]:
    """The pods of a list's answer, each read for what `pod_sighting` needs (its metadata's owners and labels).

    A pod runs to ~7 KiB of JSON (its spec, env and managedFields) of which a sighting reads a
    few fields; reading only those costs two thirds of decoding it whole. An answer of a shape the
    typed reading does not expect is decoded whole.
    """
    try:
        page: Any = _POD_LIST.validate_json(answer)
    except ValidationError:
        page = from_json(answer)
    items = page.get("items") if isinstance(page, dict) else None
    return items if isinstance(items, list) else []


def pod_sighting(body: Mapping[str, Any], jobs: Mapping[str, str | None]) -> PodSighting | None:
    """The executor container's end, if the pod belongs to one of `jobs` (Job name -> uid); None otherwise.

    The pod belongs to a Job only if its controller ownerReference is that Job, by name and uid:
    the Job controller sets it, and a pod that names another uid (or none) is not the Job's pod.
    """
    job_name = controlling_job(body.get("metadata") or {}, jobs)
    if job_name is None:
        return None
    for status in (body.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != CONTAINER_NAME:
            continue
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return PodSighting(job_name, terminated=True, message=terminated.get("message"))
    return PodSighting(job_name, terminated=False, message=None)


def controlling_job(metadata: Mapping[str, Any], jobs: Mapping[str, str | None]) -> str | None:
    """The name of the Job among `jobs` (name -> uid) that controls the object of `metadata`, if one does."""
    for owner in metadata.get("ownerReferences") or []:
        if not owner.get("controller"):
            continue
        name, uid = owner.get("name"), owner.get("uid")
        # One controller at most (the API server says so); it must be one of the Jobs, by its uid.
        ours = owner.get("kind") == "Job" and str(owner.get("apiVersion")).startswith("batch/")
        return str(name) if ours and uid and name in jobs and jobs[name] == uid else None
    return None


def created_at(metadata: Mapping[str, Any]) -> datetime | None:
    """When the API server created the object, from its metadata; None when it does not say."""
    return read_rfc3339(metadata.get("creationTimestamp"))
