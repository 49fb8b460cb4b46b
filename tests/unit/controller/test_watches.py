"""The watches' pure parts: which streams they run for the namespaces given, and how they read a watch's lines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bentham.controller.job_index import job_entry
from bentham.controller.pod_index import pod_entry
from bentham.controller.watches import Expired, watch_events, watch_scopes
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY_UID


def line(kind: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": body}).encode() + b"\n"


def job(name: str, version: str) -> dict[str, Any]:
    labels = {LABEL_STUDY_UID: "u", LABEL_CELL_INDEX: "3", LABEL_ATTEMPT: "2"}
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version, "labels": labels}}


def test_every_namespace_is_one_cluster_wide_stream() -> None:
    scopes, served = watch_scopes([])
    assert scopes == [None] and served("anything")


def test_namespaces_given_by_name_are_one_stream_each() -> None:
    scopes, served = watch_scopes(["demo", "b", "demo"])
    assert scopes == ["b", "demo"] and served("demo")


def test_a_glob_is_one_cluster_wide_stream_kept_to_the_matching_namespaces() -> None:
    scopes, served = watch_scopes(["t-*, !t-skip", "demo"])  # kopf's syntax, as kopf serves Studies
    assert scopes == [None]
    assert served("t-1") and served("demo")
    assert not served("t-skip") and not served("kube-system")


def test_events_become_entries_and_a_bookmark_only_moves_the_resource_version() -> None:
    lines = [
        line("ADDED", job("a", "10")),
        b"\n",
        line("BOOKMARK", {"kind": "Job", "metadata": {"resourceVersion": "12"}}),
        line("DELETED", job("a", "13")),
    ]

    events = list(watch_events(lines, job_entry))

    assert [(kind, version) for kind, _, version in events] == [("ADDED", "10"), ("BOOKMARK", "12"), ("DELETED", "13")]
    added = events[0][1]
    assert added is not None and added.study_uid == "u" and added.sighting is not None
    assert (added.sighting.cell_index, added.sighting.attempt) == (3, 2)
    assert events[1][1] is None


def test_an_expired_resource_version_in_the_stream_asks_for_a_list() -> None:
    lines = [line("ADDED", job("a", "10")), line("ERROR", {"kind": "Status", "code": 410, "message": "too old"})]
    events = watch_events(lines, job_entry)
    next(events)
    with pytest.raises(Expired):
        next(events)


def test_another_error_in_the_stream_ends_the_watch_to_resume() -> None:
    with pytest.raises(RuntimeError, match="500"):
        list(watch_events([line("ERROR", {"kind": "Status", "code": 500, "message": "boom"})], job_entry))


def test_a_pod_event_becomes_the_executors_end_under_its_jobs_uid() -> None:
    ended = {
        "metadata": {
            "name": "a-x7k2p",
            "namespace": "ns",
            "resourceVersion": "20",
            "labels": {LABEL_STUDY_UID: "u"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "a", "uid": "j", "controller": True}],
        },
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [{"name": "executor", "state": {"terminated": {"message": "m"}}}],
        },
    }

    [(kind, entry, version)] = list(watch_events([line("ADDED", ended)], pod_entry))

    assert (kind, version) == ("ADDED", "20")
    assert entry is not None and (entry.namespace, entry.study_uid, entry.job_uid) == ("ns", "u", "j")
    assert entry.sighting is not None and (entry.sighting.job_name, entry.sighting.message) == ("a", "m")
