"""The Job watch's pure parts: which streams it runs for the namespaces given, and how it reads a watch's lines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bentham.controller.job_watch import Expired, watch_events, watch_scopes
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

    events = list(watch_events(lines))

    assert [(kind, version) for kind, _, version in events] == [("ADDED", "10"), ("BOOKMARK", "12"), ("DELETED", "13")]
    added = events[0][1]
    assert added is not None and added.study_uid == "u" and added.sighting is not None
    assert (added.sighting.cell_index, added.sighting.attempt) == (3, 2)
    assert events[1][1] is None


def test_an_expired_resource_version_in_the_stream_asks_for_a_list() -> None:
    lines = [line("ADDED", job("a", "10")), line("ERROR", {"kind": "Status", "code": 410, "message": "too old"})]
    events = watch_events(lines)
    next(events)
    with pytest.raises(Expired):
        next(events)


def test_another_error_in_the_stream_ends_the_watch_to_resume() -> None:
    with pytest.raises(RuntimeError, match="500"):
        list(watch_events([line("ERROR", {"kind": "Status", "code": 500, "message": "boom"})]))
