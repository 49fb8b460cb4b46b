"""The ended pods: each executor's end kept under its Job's uid while the pod exists, and only a Job's own pod."""

from __future__ import annotations

from typing import Any

from bentham.controller.job_index import StudyKey
from bentham.controller.pod_index import EndedPods, PodEntry, pod_entry
from bentham.core.jobs import LABEL_STUDY_UID
from bentham.core.sightings import PodSighting

STUDY = "study-uid"
JOB_UID = "job-uid-1"


def pod(
    name: str = "s-c3-a1-x7k2p",
    *,
    namespace: str = "ns",
    job: str = "s-c3-a1",
    job_uid: str | None = JOB_UID,
    study: str | None = STUDY,
    ended: bool = True,
    message: str = '{"success": true}',
    controller: bool = True,
) -> PodEntry:
    owners = [{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": job_uid, "controller": controller}]
    state: dict[str, Any] = {"terminated": {"exitCode": 0, "message": message}} if ended else {"running": {}}
    return pod_entry(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {LABEL_STUDY_UID: study} if study else {},
                "ownerReferences": owners if job_uid else [],
            },
            "status": {"containerStatuses": [{"name": "executor", "state": state}]},
        }
    )


class Heard(list[tuple[StudyKey, str]]):
    def __call__(self, key: StudyKey, job_name: str) -> None:
        self.append((key, job_name))


def test_an_ended_pod_is_kept_under_its_jobs_uid_and_heard_of_once() -> None:
    heard = Heard()
    pods = EndedPods(heard)

    pods.apply("ADDED", pod())
    pods.apply("MODIFIED", pod())  # the Job controller takes its finalizer off; then deletion marks it

    assert pods.sighting(JOB_UID) == PodSighting("s-c3-a1", terminated=True, message='{"success": true}')
    assert heard == [(("ns", STUDY), "s-c3-a1")]


def test_a_pod_goes_when_deleted_and_a_pod_not_of_ours_is_never_kept() -> None:
    pods = EndedPods(Heard())
    pods.apply("ADDED", pod())
    pods.apply("DELETED", pod())
    assert pods.sighting(JOB_UID) is None and len(pods) == 0

    strangers = [
        pod(study=None),  # no study uid label: not a study's pod
        pod(job_uid=None),  # labels alone, no controller: anyone can write labels
        pod(controller=False),  # owned, not controlled
        pod(ended=False),  # the executor has not terminated: nothing to read yet
    ]
    for entry in strangers:
        pods.apply("ADDED", entry)
    assert len(pods) == 0


def test_a_pod_that_stops_matching_is_dropped() -> None:
    pods = EndedPods(Heard())
    pods.apply("ADDED", pod())
    pods.apply("MODIFIED", pod(study=None))  # its label taken off
    assert pods.sighting(JOB_UID) is None


def test_a_list_replaces_its_namespace_only() -> None:
    pods = EndedPods(Heard())
    pods.apply("ADDED", pod("a", job_uid="uid-a", job="a"))
    pods.apply("ADDED", pod("b", job_uid="uid-b", job="b"))
    pods.apply("ADDED", pod("c", job_uid="uid-c", job="c", namespace="other"))

    dropped = pods.replace("ns", [pod("b", job_uid="uid-b", job="b"), pod("d", job_uid="uid-d", job="d")])

    assert dropped == 1
    assert pods.sighting("uid-a") is None  # deleted while no watch was open
    assert pods.sighting("uid-b") is not None and pods.sighting("uid-d") is not None
    assert pods.sighting("uid-c") is not None  # another namespace's list will say


def test_a_second_pod_of_one_job_is_kept_and_the_firsts_deletion_does_not_drop_it() -> None:
    pods = EndedPods(Heard())
    pods.apply("ADDED", pod("first", message="one"))
    pods.apply("ADDED", pod("second", message="two"))
    pods.apply("DELETED", pod("first", message="one"))

    kept = pods.sighting(JOB_UID)
    assert kept is not None and kept.message == "two"
