"""The studies' ended pods, each kept as its executor's end under the uid of the Job that controls it; no I/O here.

Fed by our watch of ended pods (`watches.pod_watch`: labelled `bentham.io/study-uid`, phase
Succeeded or Failed, selected on the API server), so that a study's worker learns a finished
Job's termination message without a request of its own. Only pods whose executor container has
terminated are kept, and only while they exist: the Job's deletion takes its pod with it.

A pod is filed under the uid of its controller ownerReference (the Job controller's), never
under its labels: a pod a tenant makes with our labels names no Job of ours by uid, so it is
never read for one (`observe.controlling_job`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bentham.controller.job_index import Place, StudyKey, unlisted
from bentham.controller.observe import controlling_job, executor_end
from bentham.core.jobs import LABEL_STUDY_UID
from bentham.core.sightings import PodSighting


@dataclass(frozen=True, slots=True)
class PodEntry:
    """What the index keeps of one pod: where it is, whose it is, the Job controlling it, and how it ended."""

    namespace: str
    name: str
    study_uid: str | None
    job_uid: str | None
    sighting: PodSighting | None


def pod_entry(body: Mapping[str, Any]) -> PodEntry:
    """The entry of a raw pod, as the API server sent it (a list's item or a watch event's object)."""
    metadata = body.get("metadata") or {}
    study_uid = (metadata.get("labels") or {}).get(LABEL_STUDY_UID)
    job = controlling_job(metadata)
    return PodEntry(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name")),
        study_uid=str(study_uid) if study_uid else None,
        job_uid=job[1] if job else None,
        sighting=executor_end(body, job[0]) if job else None,
    )


class EndedPods:
    """Job uid -> its pod's executor's end; `on_seen` hears of each pod seen ended (study key, Job name).

    A Job of ours has one pod (its backoffLimit is 0). Should another ever end under the same Job,
    the last one seen is kept, as a list would give it.
    """

    def __init__(self, on_seen: Callable[[StudyKey, str], None]) -> None:
        self._on_seen = on_seen
        self._by_job: dict[str, tuple[Place, PodSighting]] = {}  # Job uid -> (its pod's place, its end)
        self._job_of: dict[Place, str] = {}  # (namespace, pod name) -> the uid it is filed under

    def sighting(self, job_uid: str) -> PodSighting | None:
        """How the pod of the Job of this uid ended; None while no ended pod of it has been seen."""
        kept = self._by_job.get(job_uid)
        return kept[1] if kept is not None else None

    def apply(self, event_type: str, entry: PodEntry) -> None:
        """One watch event: ADDED or MODIFIED keeps the pod's end, if its executor terminated; DELETED drops it."""
        place = (entry.namespace, entry.name)
        ended = entry.sighting is not None and entry.sighting.terminated
        if event_type == "DELETED" or entry.study_uid is None or entry.job_uid is None or not ended:
            self._drop(place)
            return
        assert entry.sighting is not None  # for mypy: `ended` says so
        if self._job_of.get(place, entry.job_uid) != entry.job_uid:
            self._drop(place)
        first = entry.job_uid not in self._by_job
        self._by_job[entry.job_uid] = (place, entry.sighting)
        self._job_of[place] = entry.job_uid
        if first:
            self._on_seen((entry.namespace, entry.study_uid), entry.sighting.job_name)

    def replace(self, namespace: str | None, listed: Iterable[PodEntry]) -> int:
        """A full list of `namespace` (None: of every namespace): pods it lacks are dropped; returns how many."""
        listed = list(listed)
        gone = unlisted(self._job_of, namespace, {(entry.namespace, entry.name) for entry in listed})
        for place in gone:
            self._drop(place)
        for entry in listed:
            self.apply("ADDED", entry)
        return len(gone)

    def _drop(self, place: Place) -> None:
        job_uid = self._job_of.pop(place, None)
        if job_uid is not None and self._by_job.get(job_uid, (None,))[0] == place:
            del self._by_job[job_uid]

    def __len__(self) -> int:
        return len(self._by_job)
