"""The batch/v1 Job of one attempt of one cell, as a plain dict for the API.

The Job is owned by its Study (garbage-collected with it), never retried by Kubernetes
(`backoffLimit: 0`: retries are the operator's, with backoff and a budget), stopped after
`attemptTimeoutSeconds`, and has no `ttlSecondsAfterFinished`: the operator deletes a Job only
after the status records its outcome, or the outcome would be lost.

The cell's coordinates and its full query text reach the executor as environment variables;
they come after `executor.env` and replace any variable of the same name there.

The pod meets the `restricted` Pod Security Standard whatever the study says: it runs as a
non-root numeric user (65532 unless the study picks another), without privilege escalation,
with every capability dropped and the RuntimeDefault seccomp profile. A study may only tighten
that (`executor.securityContext`); its ServiceAccount's token is mounted only when it names one.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

from bentham.api.manifest import Manifest, SurfaceOptions
from bentham.api.names import API_VERSION, KIND
from bentham.api.spec import ExecutorVolume, StudySpec
from bentham.core.cells import DNS_LABEL_MAX, Cell, cell_at, cell_key, short_hash
from bentham.core.decision import JobToCreate

CONTAINER_NAME = "executor"
MANAGED_BY = "bentham-operator"
# The user and group an executor runs as unless the study picks others: a number, so the kubelet
# can check runAsNonRoot for an image without a USER (65532 is distroless' `nonroot`).
DEFAULT_RUN_AS_ID = 65532

LABEL_STUDY = "bentham.io/study"
LABEL_STUDY_UID = "bentham.io/study-uid"
LABEL_CELL = "bentham.io/cell"
LABEL_CELL_INDEX = "bentham.io/cell-index"
LABEL_SURFACE = "bentham.io/surface"
LABEL_LOCATION = "bentham.io/location"
LABEL_QUERY_INDEX = "bentham.io/query-index"
LABEL_ATTEMPT = "bentham.io/attempt"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

# Study names are DNS subdomains: anything else becomes a dash in a Job name.
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


def job_name(study_name: str, study_uid: str, cell_index: int, attempt: int) -> str:
    """The Job of one attempt of one cell: `<study>-<uid hash>-c<cell>-a<attempt>`, ≤ 63 chars.

    The study's name is truncated to fit; the hash of the study's uid keeps two studies whose
    truncated names agree (or a study re-created under an old name) apart.
    """
    if cell_index < 0 or attempt < 1:
        raise ValueError(f"no Job for cell {cell_index}, attempt {attempt}")
    name, uid_hash = _study_part(study_name, study_uid)
    suffix = f"-{uid_hash}-c{cell_index}-a{attempt}"
    prefix = name[: DNS_LABEL_MAX - len(suffix)].strip("-")
    return f"{prefix or 'study'}{suffix}"


@lru_cache(maxsize=1024)
def _study_part(study_name: str, study_uid: str) -> tuple[str, str]:
    """What a study gives its Jobs' names (every pass names its Jobs in flight): its name as a DNS label
    (dots and other characters become dashes), and the hash of its uid."""
    return _NOT_NAME_CHARS.sub("-", study_name.lower()), short_hash(study_uid)


def build_job(
    *, study_name: str, namespace: str, study_uid: str, spec: StudySpec, cell: Cell, attempt: int
) -> dict[str, Any]:
    """The Job running attempt `attempt` of `cell`."""
    executor = spec.executor
    labels = job_labels(study_name=study_name, study_uid=study_uid, cell=cell, attempt=attempt)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": executor.image,
        "env": _env(spec, cell=cell, study_name=study_name, study_uid=study_uid, attempt=attempt),
        # A crash without a result still tells why, from the tail of the executor's log.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _container_security(spec),
    }
    if executor.imagePullPolicy is not None:
        container["imagePullPolicy"] = executor.imagePullPolicy
    if executor.command is not None:
        container["command"] = list(executor.command)
    if executor.args is not None:
        container["args"] = list(executor.args)
    if executor.resources is not None:
        container["resources"] = executor.resources.model_dump(mode="json", exclude_none=True)
    if executor.volumes:
        container["volumeMounts"] = [
            {"name": volume.name, "mountPath": volume.mountPath, "readOnly": volume.readOnly}
            for volume in executor.volumes
        ]

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": _pod_security(spec),
        "containers": [container],
    }
    if executor.serviceAccountName is not None:
        pod_spec["serviceAccountName"] = executor.serviceAccountName
    else:  # the namespace's default ServiceAccount: its token is no business of the executor's
        pod_spec["automountServiceAccountToken"] = False
    if executor.nodeSelector is not None:
        pod_spec["nodeSelector"] = dict(executor.nodeSelector)
    if executor.tolerations is not None:
        pod_spec["tolerations"] = [dict(toleration) for toleration in executor.tolerations]
    if executor.volumes:
        pod_spec["volumes"] = [_volume(volume) for volume in executor.volumes]

    pod_metadata: dict[str, Any] = {"labels": {**(executor.podLabels or {}), **labels}}
    if executor.podAnnotations:
        pod_metadata["annotations"] = dict(executor.podAnnotations)

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(study_name, study_uid, cell.index, attempt),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": study_name,
                    "uid": study_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": attempt_deadline_seconds(spec),
            "template": {"metadata": pod_metadata, "spec": pod_spec},
        },
    }


def _volume(volume: ExecutorVolume) -> dict[str, Any]:
    """A pod volume of the study's: its claim (read-only when mounted so), or a scratch folder."""
    if volume.persistentVolumeClaim is not None:
        claim = {"claimName": volume.persistentVolumeClaim.claimName, "readOnly": volume.readOnly}
        return {"name": volume.name, "persistentVolumeClaim": claim}
    scratch = volume.emptyDir.model_dump(mode="json", exclude_none=True) if volume.emptyDir is not None else {}
    return {"name": volume.name, "emptyDir": scratch}


def _pod_security(spec: StudySpec) -> dict[str, Any]:
    """The pod's securityContext: non-root as a number, RuntimeDefault seccomp, the study's ids if it set any."""
    chosen = spec.executor.securityContext
    security: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": DEFAULT_RUN_AS_ID,
        "runAsGroup": DEFAULT_RUN_AS_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if chosen is not None:
        security.update(chosen.model_dump(exclude_none=True, include={"runAsUser", "runAsGroup", "fsGroup"}))
    return security


def _container_security(spec: StudySpec) -> dict[str, Any]:
    """The executor container's securityContext: what `restricted` asks of every container."""
    chosen = spec.executor.securityContext
    security: dict[str, Any] = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if chosen is not None and chosen.readOnlyRootFilesystem is not None:
        security["readOnlyRootFilesystem"] = chosen.readOnlyRootFilesystem
    return security


def job_labels(*, study_name: str, study_uid: str, cell: Cell, attempt: int) -> dict[str, str]:
    """The labels of an attempt's Job and its pod: enough to find them and to read them back."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_STUDY: label_value(study_name),
        LABEL_STUDY_UID: study_uid,
        LABEL_CELL: cell_key(cell),
        LABEL_CELL_INDEX: str(cell.index),
        LABEL_SURFACE: cell.surface.value,
        LABEL_LOCATION: cell.location.value,
        LABEL_QUERY_INDEX: str(cell.query_index),
        LABEL_ATTEMPT: str(attempt),
    }


def label_value(name: str) -> str:
    """`name` as a label value (≤ 63 chars): as is when it fits, else truncated plus a hash."""
    if len(name) <= DNS_LABEL_MAX:
        return name
    return f"{name[: DNS_LABEL_MAX - 6].rstrip('-.')}-{short_hash(name)}"


def _env(spec: StudySpec, *, cell: Cell, study_name: str, study_uid: str, attempt: int) -> list[dict[str, Any]]:
    manifest = spec.manifest
    query = manifest.queries[cell.query_index]
    surface = next(s for s in manifest.surfaces if s.id == cell.surface)
    location = next(loc for loc in manifest.locations if loc.id == cell.location)
    ours = {
        "BENTHAM_STUDY": study_name,
        "BENTHAM_STUDY_UID": study_uid,
        "BENTHAM_CELL": cell_key(cell),
        "BENTHAM_CELL_INDEX": str(cell.index),
        "BENTHAM_QUERY_INDEX": str(cell.query_index),
        "BENTHAM_QUERY_TEXT": query.text,
        "BENTHAM_SURFACE": cell.surface.value,
        "BENTHAM_SURFACE_OPTIONS": _json(
            (surface.options or SurfaceOptions()).model_dump(mode="json", exclude_none=True)
        ),
        "BENTHAM_LOCATION": cell.location.value,
        "BENTHAM_LOCATION_OPTIONS": _json(location.model_dump(mode="json", exclude_none=True, exclude={"id"})),
        "BENTHAM_ATTEMPT": str(attempt),
        "BENTHAM_EVIDENCE_LEVEL": manifest.evidenceLevel.value,
    }
    if query.context is not None:
        ours["BENTHAM_QUERY_CONTEXT"] = query.context
    if query.category is not None:
        ours["BENTHAM_QUERY_CATEGORY"] = query.category
    if query.tags is not None:
        ours["BENTHAM_QUERY_TAGS"] = _json(list(query.tags))
    if "sessionIsolation" in manifest.model_fields_set:
        ours["BENTHAM_SESSION_ISOLATION"] = manifest.sessionIsolation.value
    if manifest.legalHold or manifest.retentionDays is not None or manifest.preserveForever:
        ours["BENTHAM_LEGAL_HOLD"] = str(manifest.legalHold).lower()
        ours["BENTHAM_PRESERVE_FOREVER"] = str(manifest.preserveForever).lower()
        if manifest.retentionDays is not None:
            ours["BENTHAM_RETENTION_DAYS"] = str(manifest.retentionDays)
    ours.update(_execution_env(manifest))
    theirs = [env.model_dump(mode="json", exclude_none=True) for env in spec.executor.env or [] if env.name not in ours]
    return theirs + [{"name": name, "value": value} for name, value in ours.items()]


def _execution_env(manifest: Manifest) -> dict[str, str]:
    """What happens inside one attempt, for the executor: only when the manifest has an execution block."""
    execution = manifest.execution
    if execution is None:
        return {}
    timeouts = execution.timeouts
    env = {
        "BENTHAM_QUERY_TIMEOUT_MS": str(timeouts.queryTimeoutMs),
        "BENTHAM_CONNECTION_TIMEOUT_MS": str(timeouts.connectionTimeoutMs),
    }
    if timeouts.surfaceTimeoutMs is not None:
        env["BENTHAM_SURFACE_TIMEOUT_MS"] = str(timeouts.surfaceTimeoutMs)
    if execution.queryDelayMs is not None:
        env["BENTHAM_QUERY_DELAY_MS"] = ",".join(map(str, execution.queryDelayMs))
    return env


def attempt_deadline_seconds(spec: StudySpec) -> int:
    """The Job's activeDeadlineSeconds: the executor's attemptTimeoutSeconds, never shorter than one query may take.

    One query may take its connection timeout, its delay and its query timeout (execution block).
    """
    execution = spec.manifest.execution
    if execution is None:
        return spec.executor.attemptTimeoutSeconds
    timeouts = execution.timeouts
    delay = max(execution.queryDelayMs or [0])
    needed = math.ceil((timeouts.connectionTimeoutMs + delay + timeouts.queryTimeoutMs) / 1000)
    return max(spec.executor.attemptTimeoutSeconds, needed)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def attempt_job(
    *, study_name: str, namespace: str, study_uid: str, spec: StudySpec, index: int, attempt: int
) -> JobToCreate:
    """The Job to create for attempt `attempt` of the cell at `index`."""
    cell = cell_at(spec.manifest, index)
    body = build_job(
        study_name=study_name, namespace=namespace, study_uid=study_uid, spec=spec, cell=cell, attempt=attempt
    )
    return JobToCreate(name=body["metadata"]["name"], cell=cell, attempt=attempt, body=body)
