"""Notifications as data: one per occurrence, with ids a receiver can de-duplicate on."""

from __future__ import annotations

import json

from core_builders import UID, Decided, Study, at, make_spec, result, succeeded

from bentham.core.decision import Notification


def kinds(decision: Decided) -> list[str]:
    return [n.event for n in decision.notifications]


def test_a_new_study_notes_created_and_started_with_once_in_a_life_ids() -> None:
    decision = Study(make_spec()).decide()
    assert kinds(decision) == ["study.created", "study.started"]
    assert [n.id for n in decision.notifications] == [f"{UID}:study.created", f"{UID}:study.started"]


def test_payload_names_the_study_its_tenant_state_and_progress_and_is_json() -> None:
    created = Study(make_spec()).decide().notifications[0]
    payload = created.payload
    assert payload["study"] == {"name": "mystudy", "namespace": "tenant-acme", "uid": UID, "tenantId": "acme"}
    assert payload["state"] == "executing" and payload["reason"] == "ManifestReceived"
    assert payload["timestamp"] == "2030-01-01T12:00:00.000Z"
    assert payload["progress"] == {
        "total": 8,
        "completed": 0,
        "failed": 0,
        "executing": 8,
        "pending": 0,
        "percent": "0%",
    }
    assert json.loads(json.dumps(payload)) == payload


def test_feeding_a_decision_its_own_status_back_notes_nothing_again() -> None:
    study = Study(make_spec())
    study.step()
    assert study.step(at(1)).notifications == []


def test_deciding_the_same_occurrence_again_gives_the_same_ids() -> None:
    study = Study(make_spec())
    study.step()
    study.spec["paused"] = True
    first, again = study.decide(at(5)), study.decide(at(5))  # a status write lost, the decision redone
    assert first.notifications == again.notifications and kinds(first) == ["study.paused"]


def test_pause_and_resume_are_noted_each_time_with_distinct_ids() -> None:
    study = Study(make_spec())
    study.step()
    ids: list[str] = []
    for second, paused in ((10, True), (20, False), (30, True), (40, False)):
        study.spec["paused"] = paused
        decision = study.step(at(second))
        assert kinds(decision) == ["study.paused" if paused else "study.resumed"]
        ids.append(decision.notifications[0].id)
    assert ids[0] == f"{UID}:study.paused:2030-01-01T12:00:10.000Z" and len(set(ids)) == 4


def test_a_study_created_paused_notes_started_not_resumed_when_unpaused() -> None:
    study = Study(make_spec(paused=True))
    assert kinds(study.step()) == ["study.created", "study.paused"]
    study.spec["paused"] = False
    assert kinds(study.step(at(10))) == ["study.started"]


def test_cancel_notes_cancelled_once_with_the_reason() -> None:
    study = Study(make_spec())
    study.step()
    study.spec["cancel"] = {"reason": "budget cut"}
    decision = study.step(at(5))
    [note] = decision.notifications
    assert note.event == "study.cancelled" and note.id == f"{UID}:study.cancelled"
    assert "budget cut" in note.payload["message"] and note.payload["state"] == "cancelled"
    assert study.step(at(6)).notifications == []


def test_completion_notes_completed() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",)))
    [job] = study.step().create
    study.finish(job.name, succeeded(job, at=at(1)))
    decision = study.step(at(2))
    assert kinds(decision) == ["study.completed"] and decision.notifications[0].payload["progress"]["completed"] == 1


def test_an_invalid_spec_notes_created_and_failed() -> None:
    spec = make_spec()
    spec["manifest"]["completionCriteria"]["maxRetriesPerCell"] = 0
    decision = Study(spec).decide()
    assert kinds(decision) == ["study.created", "study.failed"]
    assert decision.notifications[1].payload["reason"] == "InvalidSpec"


def test_each_cell_failed_for_good_is_noted_with_its_coordinates_and_retries_are_not() -> None:
    study = Study(make_spec(queries=1, locations=("us-nyc",), threshold=0.0, max_retries=2))
    first, second = study.step().create
    study.finish(first.name, succeeded(first, result(success=False, code="AUTH_FAILED"), at=at(1)))
    study.finish(second.name, succeeded(second, result(success=False, code="TIMEOUT"), at=at(1)))
    decision = study.step(at(1))
    [note] = [n for n in decision.notifications if n.event == "cell.failed"]
    assert note.id == f"{UID}:cell.failed:{first.cell.index}"
    assert note.payload["cell"] == {
        "key": "q0-openai-api-us-nyc",
        "index": first.cell.index,
        "queryIndex": 0,
        "surface": "openai-api",
        "location": "us-nyc",
        "attempts": 1,
        "reason": "ExecutorError",
        "code": "AUTH_FAILED",
        "message": "AUTH_FAILED: AUTH_FAILED happened",
    }


def test_notifications_are_frozen_values() -> None:
    note = Notification(event="study.created", id="x", payload={})
    assert note == Notification(event="study.created", id="x", payload={})
