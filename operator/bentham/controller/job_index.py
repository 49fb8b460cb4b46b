"""Each study's Jobs as small sightings, kept current from our Job watch (`job_watch`); no I/O here.

The index holds, for each study (namespace, uid label), its Jobs by name, each as the sighting
`observe.job_sighting` makes of it: never the Job itself, so memory stays flat however many
events go by. A watch event updates one Job; a list replaces everything its scope (one namespace,
or every served one) holds, so a Job deleted while the watch was down cannot linger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bentham.controller.observe import job_sighting
from bentham.core.decision import ObservedJob
from bentham.core.jobs import LABEL_STUDY_UID

StudyKey = tuple[str, str]  # (namespace, the study's uid as its Jobs' `bentham.io/study-uid` label)


@dataclass(frozen=True, slots=True)
class JobEntry:
    """What the index keeps of one Job: where it is, whose it is, and its sighting (None: not one of ours)."""

    namespace: str
    name: str
    study_uid: str | None
    sighting: ObservedJob | None


def job_entry(body: Mapping[str, Any]) -> JobEntry:
    """The entry of a raw Job, as the API server sent it (a list's item or a watch event's object)."""
    metadata = body.get("metadata") or {}
    uid = (metadata.get("labels") or {}).get(LABEL_STUDY_UID)
    return JobEntry(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name")),
        study_uid=str(uid) if uid else None,
        sighting=job_sighting(body) if uid else None,
    )


class JobIndex:
    """Study -> {Job name -> sighting}; `on_seen` hears of every Job sighted (added, changed or listed).

    A Job without the uid label, or without our cell labels, is not indexed; one that loses them
    leaves the index, as does a Job whose uid label moves it to another study's key.
    """

    def __init__(self, on_seen: Callable[[StudyKey, ObservedJob], None]) -> None:
        self._on_seen = on_seen
        self._by_study: dict[StudyKey, dict[str, ObservedJob]] = {}
        self._study_of: dict[tuple[str, str], StudyKey] = {}  # (namespace, Job name) -> its key in `_by_study`

    def jobs(self, key: StudyKey) -> tuple[ObservedJob, ...]:
        """The study's Jobs now, as a copy: the metrics' scrape reads it from a thread of its own."""
        return tuple(self._by_study.get(key, {}).values())

    def apply(self, event_type: str, entry: JobEntry) -> None:
        """One watch event: ADDED or MODIFIED indexes the Job as it is now, DELETED drops it."""
        if event_type == "DELETED" or entry.study_uid is None or entry.sighting is None:
            self._drop(entry.namespace, entry.name)
            return
        key = (entry.namespace, entry.study_uid)
        if self._study_of.get((entry.namespace, entry.name), key) != key:
            self._drop(entry.namespace, entry.name)
        self._by_study.setdefault(key, {})[entry.name] = entry.sighting
        self._study_of[entry.namespace, entry.name] = key
        self._on_seen(key, entry.sighting)

    def replace(self, namespace: str | None, listed: Iterable[JobEntry]) -> int:
        """A full list of `namespace` (None: of every namespace): Jobs it lacks are dropped; returns how many."""
        listed = list(listed)
        present = {(entry.namespace, entry.name) for entry in listed}
        gone = [
            place for place in self._study_of if (namespace is None or place[0] == namespace) and place not in present
        ]
        for place in gone:
            self._drop(*place)
        for entry in listed:
            self.apply("ADDED", entry)
        return len(gone)

    def _drop(self, namespace: str, name: str) -> None:
        key = self._study_of.pop((namespace, name), None)
        if key is None:
            return
        jobs = self._by_study[key]
        jobs.pop(name, None)
        if not jobs:
            del self._by_study[key]

    def __len__(self) -> int:
        return len(self._study_of)
