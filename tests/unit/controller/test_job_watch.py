"""The Job watch's pure parts: which streams it runs for the namespaces given, and how it reads a watch's lines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bentham.controller.job_watch import Expired, read_event, watch_scopes
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY_UID


def line(kind: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": body}).encode()


def job(name: str, version: str) -> dict[str, Any]:
    labels = {LABEL_STUDY_UID: "u", LABEL_CELL_INDEX: "3", LABEL_ATTEMPT: "2"}
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version, "labels": labels}}


def status_object(code: int, message: str) -> dict[str, Any]:
    """An error in a watch, as the API server sends it: a whole Status."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "code": code}


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

    events = [event for event in map(read_event, lines) if event is not None]

    assert [(kind, version) for kind, _, version in events] == [("ADDED", "10"), ("BOOKMARK", "12"), ("DELETED", "13")]
    added = events[0][1]
    assert added is not None and added.study_uid == "u" and added.sighting is not None
    assert (added.sighting.cell_index, added.sighting.attempt) == (3, 2)
    assert events[1][1] is None


def test_an_expired_resource_version_in_the_stream_asks_for_a_list() -> None:
    assert read_event(line("ADDED", job("a", "10"))) is not None
    with pytest.raises(Expired):
        read_event(line("ERROR", status_object(410, "too old")))


def test_another_error_in_the_stream_ends_the_watch_to_resume() -> None:
    with pytest.raises(RuntimeError, match="500"):
        read_event(line("ERROR", status_object(500, "boom")))


def test_only_what_a_sighting_needs_is_read_of_a_whole_job() -> None:
    body = job("a", "10")
    body["metadata"]["managedFields"] = [{"manager": "kube-controller-manager", "fieldsV1": {"f:status": {}}}]
    body["spec"] = {"template": {"spec": {"containers": [{"name": "executor", "env": [{"name": "A", "value": "1"}]}]}}}
    body["status"] = {
        "active": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2030-01-01T00:00:01Z"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "DeadlineExceeded",
                "lastTransitionTime": "2030-01-01T00:00:02Z",
            },
        ],
    }

    event = read_event(line("MODIFIED", body))

    assert event is not None
    kind, entry, version = event
    assert (kind, version) == ("MODIFIED", "10")
    assert entry is not None and entry.sighting is not None
    assert (entry.namespace, entry.name, entry.study_uid) == ("ns", "a", "u")
    assert (entry.sighting.phase, entry.sighting.failure_reason) == ("failed", "DeadlineExceeded")
    assert entry.sighting.finished_at is not None and entry.sighting.finished_at.second == 2


def test_an_event_of_an_unexpected_shape_is_read_whole() -> None:
    body = job("a", "10")
    body["metadata"]["resourceVersion"] = 10  # a number, not a string: no API server sends it; a stream must not stall

    event = read_event(line("MODIFIED", body))

    assert event is not None and event[1] is not None and event[2] == "10"
