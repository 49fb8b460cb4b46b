"""The Job index: watch events and lists keep each study's Jobs as the API server has them, and nothing more."""

from __future__ import annotations

from typing import Any

from bentham.controller.job_index import JobEntry, JobIndex, StudyKey, job_entry
from bentham.core.decision import ObservedJob
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY_UID

UID, OTHER = "uid-1", "uid-2"


def job(name: str, *, namespace: str = "ns", uid: str | None = UID, cell: int = 0, done: bool = False) -> JobEntry:
    labels = {LABEL_CELL_INDEX: str(cell), LABEL_ATTEMPT: "1"}
    if uid is not None:
        labels[LABEL_STUDY_UID] = uid
    status: dict[str, Any] = {}
    if done:
        status["conditions"] = [{"type": "Complete", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}]
    return job_entry({"metadata": {"name": name, "namespace": namespace, "labels": labels}, "status": status})


class Heard:
    def __init__(self) -> None:
        self.seen: list[tuple[StudyKey, ObservedJob]] = []

    def __call__(self, key: StudyKey, sighting: ObservedJob) -> None:
        self.seen.append((key, sighting))


def names(index: JobIndex, key: StudyKey) -> list[str]:
    return sorted(job.name for job in index.jobs(key))


def test_added_and_modified_jobs_are_indexed_by_study_uid_and_each_sighting_is_heard() -> None:
    heard = Heard()
    index = JobIndex(heard)

    index.apply("ADDED", job("a"))
    index.apply("ADDED", job("b", uid=OTHER))
    index.apply("MODIFIED", job("a", done=True))

    assert names(index, ("ns", UID)) == ["a"] and names(index, ("ns", OTHER)) == ["b"]
    assert [sighting.phase for sighting in index.jobs(("ns", UID))] == ["succeeded"]
    assert [(key, sighting.name, sighting.phase) for key, sighting in heard.seen] == [
        (("ns", UID), "a", "running"),
        (("ns", OTHER), "b", "running"),
        (("ns", UID), "a", "succeeded"),
    ]


def test_deleted_removes_the_job_and_an_emptied_study_leaves_no_key() -> None:
    index = JobIndex(Heard())
    index.apply("ADDED", job("a"))

    index.apply("DELETED", job("a", done=True))

    assert names(index, ("ns", UID)) == [] and len(index) == 0 and index._by_study == {}


def test_a_job_without_the_uid_label_or_cell_labels_is_never_indexed() -> None:
    heard = Heard()
    index = JobIndex(heard)
    unlabelled = job_entry({"metadata": {"name": "x", "namespace": "ns", "labels": {LABEL_STUDY_UID: UID}}})

    index.apply("ADDED", job("stranger", uid=None))
    index.apply("ADDED", unlabelled)

    assert len(index) == 0 and heard.seen == []


def test_a_job_whose_uid_label_changes_leaves_its_old_studys_key() -> None:
    index = JobIndex(Heard())
    index.apply("ADDED", job("a"))

    index.apply("MODIFIED", job("a", uid=OTHER))

    assert names(index, ("ns", UID)) == [] and names(index, ("ns", OTHER)) == ["a"]
    index.apply("MODIFIED", job("a", uid=None))  # a watch selected by the label would send DELETED; either way
    assert len(index) == 0


def test_a_job_of_the_same_name_in_another_namespace_is_another_job() -> None:
    index = JobIndex(Heard())
    index.apply("ADDED", job("a", namespace="ns"))
    index.apply("ADDED", job("a", namespace="other"))

    index.apply("DELETED", job("a", namespace="other"))

    assert names(index, ("ns", UID)) == ["a"] and names(index, ("other", UID)) == []


def test_a_list_drops_the_jobs_deleted_while_unwatched_and_hears_the_rest() -> None:
    heard = Heard()
    index = JobIndex(heard)
    for name in ("kept", "deleted-unseen", "finished-unseen"):
        index.apply("ADDED", job(name))
    heard.seen.clear()

    dropped = index.replace("ns", [job("kept"), job("finished-unseen", done=True), job("new")])

    assert dropped == 1
    assert names(index, ("ns", UID)) == ["finished-unseen", "kept", "new"]
    assert sorted((s.name, s.phase) for _, s in heard.seen) == [
        ("finished-unseen", "succeeded"),
        ("kept", "running"),
        ("new", "running"),
    ]


def test_a_namespaces_list_leaves_other_namespaces_jobs_alone_and_a_cluster_wide_one_does_not() -> None:
    index = JobIndex(Heard())
    index.apply("ADDED", job("a", namespace="ns"))
    index.apply("ADDED", job("b", namespace="other"))

    assert index.replace("ns", []) == 1
    assert names(index, ("other", UID)) == ["b"]
    assert index.replace(None, [job("c", namespace="ns")]) == 1
    assert names(index, ("other", UID)) == [] and names(index, ("ns", UID)) == ["c"]
