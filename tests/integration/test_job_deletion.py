"""`KubeClient.delete_jobs` against the real API server: a label-selected deletecollection takes exactly the
attempts it names, of its own study, and nothing else in the namespace.
"""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client

from bentham.controller import kube as kube_module
from bentham.controller.kube import KubeClient
from bentham.controller.metrics import Metrics
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY_UID
from tests.support import Cluster


def job(name: str, uid: str, cell: int, attempt: int) -> dict[str, object]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": {LABEL_STUDY_UID: uid, LABEL_CELL_INDEX: str(cell), LABEL_ATTEMPT: str(attempt)},
        },
        "spec": {
            "suspend": True,  # never runs: only its existence matters here
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
        },
    }


def left(api: client.ApiClient, namespace: str) -> set[str]:
    jobs = client.BatchV1Api(api).list_namespaced_job(namespace).items
    return {job.metadata.name for job in jobs if job.metadata.deletion_timestamp is None}


@pytest.mark.parametrize("per_request", [100, 1], ids=["one-request", "a-request-per-job"])
def test_delete_jobs_takes_the_named_attempts_of_its_study_only(
    study_crd: Cluster, unwatched_namespace: str, per_request: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_module, "JOBS_PER_DELETE", per_request)
    kube = KubeClient(study_crd.api, Metrics())
    jobs = {
        "a-0-1": ("uid-a", 0, 1),
        "a-1-1": ("uid-a", 1, 1),
        "a-0-2": ("uid-a", 0, 2),  # another attempt of a named cell
        "a-10-1": ("uid-a", 10, 1),  # a cell whose index starts with a named one's
        "b-0-1": ("uid-b", 0, 1),  # another study's Job of the same cell and attempt
    }
    for name, (uid, cell, attempt) in jobs.items():
        assert asyncio.run(kube.create_job(unwatched_namespace, job(name, uid, cell, attempt))) is None
    assert left(study_crd.api, unwatched_namespace) == set(jobs)

    asyncio.run(kube.delete_jobs(unwatched_namespace, "uid-a", [(0, 1), (1, 1), (7, 1)]))  # cell 7 has no Job

    assert left(study_crd.api, unwatched_namespace) == {"a-0-2", "a-10-1", "b-0-1"}
