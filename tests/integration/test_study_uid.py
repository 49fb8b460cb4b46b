"""A Study is its uid, not its name: a study re-created under an old name leaves the old one's Jobs alone.

The old study is deleted with orphan propagation, so its Jobs outlive it and end (their pods
run on) while the new study of the same name runs: exactly the Jobs a study keyed by its name
would mistake for its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from bench.operator_process import OperatorProcess
from bentham.api.spec import StudySpec
from bentham.api.status import Checkpoint, StudyState, StudyStatus
from bentham.controller.kube import PODS_PER_LIST, KubeClient, StudyRef
from bentham.controller.metrics import Metrics
from bentham.controller.webhook_sender import WebhookSender
from bentham.controller.workers import StudyWorker
from bentham.core.cells import cell_at
from bentham.core.checkpoint import CellState, read_records
from bentham.core.jobs import build_job
from tests.support import GROUP, PLURAL, VERSION, Cluster, ResumingWatch, Studies, eventually, study

STUDY_LABEL = "bentham.io/study"
UID_LABEL = "bentham.io/study-uid"
CELL_LABEL = "bentham.io/cell-index"
ATTEMPT_LABEL = "bentham.io/attempt"
HOLD = "test.bentham.io/hold"  # a finalizer that keeps a deleted Job around until the test lets it go


class JobsSeen(ResumingWatch):
    """Every Job that appears in a namespace from now on, by name, with its labels."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.labels: dict[str, dict[str, str]] = {}
        super().__init__(client.BatchV1Api(cluster.api).list_namespaced_job, namespace)

    def saw(self, type_: str, item: Any) -> None:
        self.labels.setdefault(item.metadata.name, dict(item.metadata.labels or {}))

    def of_uid(self, uid: str) -> dict[str, dict[str, str]]:
        return {name: labels for name, labels in list(self.labels.items()) if labels.get(UID_LABEL) == uid}


def jobs_of_uid(studies: Studies, uid: str) -> list[client.V1Job]:
    return list(studies.batch.list_namespaced_job(studies.namespace, label_selector=f"{UID_LABEL}={uid}").items)


def finished(job: client.V1Job) -> bool:
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions or [])


def gone(studies: Studies, name: str) -> bool:
    try:
        studies.get(name)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def delete_orphaning_jobs(studies: Studies, name: str) -> None:
    """Deletes the Study and leaves its Jobs behind (`kubectl delete --cascade=orphan`)."""
    studies.api.delete_namespaced_custom_object(
        GROUP, VERSION, studies.namespace, PLURAL, name, propagation_policy="Orphan"
    )


def test_a_study_re_created_under_its_name_leaves_the_old_uids_jobs_alone(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    seen = JobsSeen(cluster, namespace)
    # 6 cells, 3 at a time, 6 s each: the new study runs at least 12 s, and the old study's Jobs
    # end about 6 s after they started, while the new one runs.
    body = study(
        "again",
        queries=3,
        locations=("us-nyc", "uk-lon"),
        parallelism=3,
        pod_annotations={"sim.bentham.io/duration": "6s"},
    )
    total = 6
    old_uid = "not-created-yet"
    try:
        old_uid = studies.create(body)["metadata"]["uid"]
        studies.wait_for_state("again", "executing")
        eventually(lambda: len(jobs_of_uid(studies, old_uid)) == 3, what="the old study's first Jobs")
        delete_orphaning_jobs(studies, "again")
        eventually(lambda: gone(studies, "again"), timeout_s=30, what="the old study to be gone")
        new: dict[str, Any] = studies.create(body)  # at once: the old uid's DELETED may still be on its way
        new_uid = new["metadata"]["uid"]
        assert new_uid != old_uid
        orphans = {job.metadata.name for job in jobs_of_uid(studies, old_uid)}
        assert len(orphans) == 3, orphans  # the operator did not delete the old study's Jobs when it went

        status = studies.wait_for_state("again", "complete", "failed", timeout_s=180)
        # The new study's own Jobs go once their outcomes are written: by then it has made its deleting passes.
        eventually(lambda: not jobs_of_uid(studies, new_uid), what="the new study's Jobs to be deleted")
        left = {job.metadata.name: job for job in jobs_of_uid(studies, old_uid)}
    finally:
        seen.stop()
        for job in jobs_of_uid(studies, old_uid):
            studies.batch.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Background")

    assert status["state"] == "complete", status.get("message")
    progress = status["progress"]
    assert (progress["totalCells"], progress["completedCells"], progress["failedCells"]) == (total, total, 0)
    records = read_records(Checkpoint.model_validate(status["checkpoint"]))
    assert records is not None
    assert [(record.state, record.attempts) for record in records] == [(CellState.COMPLETED, 1)] * total

    # The attempts it counted are its own Jobs: one per cell, each under the new uid; none of the old uid's.
    ours = seen.of_uid(new_uid)
    assert sorted(int(labels[CELL_LABEL]) for labels in ours.values()) == list(range(total)), ours
    assert all(labels[ATTEMPT_LABEL] == "1" for labels in ours.values())
    named_again = {name for name, labels in seen.labels.items() if labels.get(STUDY_LABEL) == "again"}
    assert named_again == set(ours) | orphans

    # The old uid's Jobs are left alone: they ended while the new study ran, and are still there.
    assert set(left) == orphans
    assert all(finished(job) for job in left.values()), "the old Jobs should have ended while the new study ran"


def test_a_study_re_created_while_the_old_ones_jobs_are_being_collected_runs_on_its_own_jobs(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """The usual way, `kubectl delete` then apply again at once: the old Jobs are still there, being deleted.

    A finalizer of the test's holds the old Jobs in their deletion, so the new study surely meets
    them. It is also created at once, so the old uid's DELETED may be handled after the new uid's
    first event (kopf handles each object's events in a stream of its own, keyed by uid); that order
    cannot be forced from outside the operator: tests/unit/controller/test_study_identity.py plays it
    through the handlers.
    """
    studies = Studies(cluster, namespace)
    seen = JobsSeen(cluster, namespace)
    cells = 4
    old_body = study("churn", queries=2, parallelism=2, pod_annotations={"sim.bentham.io/duration": "60s"})
    new_body = study("churn", queries=2, parallelism=2, pod_annotations={"sim.bentham.io/duration": "1s"})
    old_uid = "not-created-yet"
    try:
        old_uid = studies.create(old_body)["metadata"]["uid"]

        def first_jobs() -> list[str] | None:
            names = [job.metadata.name for job in jobs_of_uid(studies, old_uid)]
            return names if len(names) == 2 else None

        held = eventually(first_jobs, what="the old study's first Jobs")
        for name in held:
            studies.batch.patch_namespaced_job(name, namespace, {"metadata": {"finalizers": [HOLD]}})
        studies.delete("churn")  # the garbage collector deletes its Jobs once it is gone
        eventually(lambda: gone(studies, "churn"), timeout_s=30, what="the old study to be gone")
        new_uid = studies.create(new_body)["metadata"]["uid"]
        eventually(
            lambda: all(job.metadata.deletion_timestamp for job in jobs_of_uid(studies, old_uid)),
            what="the garbage collector to delete the old Jobs",
        )
        status = studies.wait_for_state("churn", "complete", "failed", timeout_s=120)
        left = {job.metadata.name for job in jobs_of_uid(studies, old_uid)}
    finally:
        seen.stop()
        for job in jobs_of_uid(studies, old_uid):
            studies.batch.patch_namespaced_job(job.metadata.name, namespace, {"metadata": {"finalizers": None}})

    assert status["state"] == "complete", status.get("message")
    assert status["progress"]["completedCells"] == cells
    records = read_records(Checkpoint.model_validate(status["checkpoint"]))
    assert records is not None
    assert [(record.state, record.attempts) for record in records] == [(CellState.COMPLETED, 1)] * cells
    assert sorted(int(labels[CELL_LABEL]) for labels in seen.of_uid(new_uid).values()) == list(range(cells))
    assert left == set(held), "the old Jobs should still have been there, held, while the new study ran"


def test_the_operators_client_writes_the_status_and_reads_the_pods_of_its_own_uid_only(
    study_crd: Cluster, unwatched_namespace: str
) -> None:
    """No operator runs here: the test drives the operator's KubeClient against the real API server."""
    cluster, namespace = study_crd, unwatched_namespace
    studies = Studies(cluster, namespace)
    kube = KubeClient(cluster.api, Metrics())
    body = study("mine", queries=1, locations=("us-nyc",))
    created = studies.create(body)["metadata"]
    uid, version = created["uid"], created["resourceVersion"]
    status = StudyStatus(state=StudyState.QUEUED, message="written for this uid")

    other = StudyRef(namespace, "mine", uid="a-deleted-study-of-this-name")
    assert not asyncio.run(kube.replace_status(other, status, version))
    assert "message" not in studies.status("mine")
    assert not asyncio.run(kube.replace_status(StudyRef(namespace, "nobody", uid=uid), status, version))
    assert asyncio.run(kube.replace_status(StudyRef(namespace, "mine", uid=uid), status, version))
    assert studies.status("mine")["message"] == "written for this uid"

    # Two Jobs of the same cell and study name, as the core builds them, under two uids.
    spec = StudySpec.model_validate(body["spec"])
    names = {}
    for job_uid in (uid, "a-deleted-study-of-this-name"):
        job = build_job(
            study_name="mine",
            namespace=namespace,
            study_uid=job_uid,
            spec=spec,
            cell=cell_at(spec.manifest, 0),
            attempt=1,
        )
        del job["metadata"]["ownerReferences"]  # the garbage collector would take the second: its owner is not there
        studies.batch.create_namespaced_job(namespace, job)
        names[job_uid] = job["metadata"]["name"]
    eventually(
        lambda: all(finished(studies.batch.read_namespaced_job(name, namespace)) for name in names.values()),
        what="both Jobs' pods to end",
    )

    for job_uid, job_name in names.items():
        pods = asyncio.run(kube.finished_pods(namespace, job_uid, sorted(names.values())))
        assert [pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] for pod in pods] == [job_name]


def test_the_operators_client_lists_the_ended_pods_of_more_jobs_than_one_list_may_name(
    study_crd: Cluster, unwatched_namespace: str
) -> None:
    """A pass that finds more finished Jobs than PODS_PER_LIST gets every one's pod, over several lists."""
    cluster, namespace = study_crd, unwatched_namespace
    studies = Studies(cluster, namespace)
    kube = KubeClient(cluster.api, Metrics())
    body = study("many", queries=PODS_PER_LIST + 30, locations=("us-nyc",))
    uid = studies.create(body)["metadata"]["uid"]
    spec = StudySpec.model_validate(body["spec"])
    names = []
    for index in range(PODS_PER_LIST + 30):
        job = build_job(
            study_name="many",
            namespace=namespace,
            study_uid=uid,
            spec=spec,
            cell=cell_at(spec.manifest, index),
            attempt=1,
        )
        studies.batch.create_namespaced_job(namespace, job)
        names.append(job["metadata"]["name"])
    eventually(
        lambda: sum(finished(job) for job in studies.batch.list_namespaced_job(namespace).items) == len(names),
        timeout_s=120,
        what="every Job's pod to end",
    )

    pods = asyncio.run(kube.finished_pods(namespace, uid, [*names, "many-no-such-job"]))

    assert sorted(pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] for pod in pods) == sorted(names)
    assert asyncio.run(kube.finished_pods(namespace, uid, [])) == []


def test_a_worker_whose_study_was_replaced_under_its_name_writes_nothing_and_stops(
    study_crd: Cluster, unwatched_namespace: str
) -> None:
    """The old uid's worker, still around when a new study takes the name: its first write finds out, and it stops."""
    cluster, namespace = study_crd, unwatched_namespace
    studies = Studies(cluster, namespace)
    studies.create(study("taken", queries=1, locations=("us-nyc",)))
    last_seen = studies.get("taken")
    last_seen["metadata"]["uid"] = "a-deleted-study-of-this-name"  # what the old uid's worker last saw

    async def scenario() -> StudyWorker:
        webhooks = WebhookSender()
        worker = StudyWorker(
            (namespace, "a-deleted-study-of-this-name"),
            KubeClient(cluster.api, Metrics()),
            webhooks,
            jobs=lambda key: (),
            metrics=Metrics(),
            batch_window_s=0.3,
            status_interval_s=5.0,
        )
        worker.start()
        worker.see(last_seen)
        assert worker._task is not None
        await asyncio.wait_for(worker._task, timeout=30)
        return worker

    worker = asyncio.run(scenario())

    assert worker.gone
    assert studies.status("taken") == {}, "the old uid's worker wrote the new study's status"
    assert not studies.jobs("taken")
