"""The study's lifecycle as `decide()` drives it: creation, validation, pause, cancel, the end."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from core_builders import Study, at, failed, make_spec, result, running, succeeded

from bentham.api.spec import StudySpec
from bentham.api.status import StudyStatus
from bentham.core.checkpoint import CellState, read_records
from bentham.core.ordering import start_order


def test_new_study_moves_to_executing_and_starts_exactly_parallelism_cells_in_fair_order() -> None:
    study = Study(make_spec(queries=3, parallelism=5))
    decision = study.decide()
    assert decision.status["state"] == "executing"
    assert [e.reason for e in decision.events] == ["ManifestReceived", "Validating", "Queued", "Started"]
    order = start_order(StudySpec.model_validate(study.spec).manifest).all
    assert [job.cell.index for job in decision.create] == list(order[:5])
    assert all(job.attempt == 1 for job in decision.create)
    status = decision.status
    assert status["observedGeneration"] == 1 and status["startedAt"] == "2030-01-01T12:00:00Z"
    assert status["parallelism"] == 5
    assert status["progress"]["executingCells"] == 5 and status["progress"]["pendingCells"] == 7
    assert status["checkpoint"]["sequence"] == 1
    assert status["checkpoint"]["inFlight"] == sorted(
        (j.name for j in decision.create), key=lambda n: int(n.split("-c")[1].split("-")[0])
    )
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "False",
        "Complete": "False",
        "Failed": "False",
        "Paused": "False",
    }
    assert decision.delete == [] and decision.requeue_after is None


def test_status_is_a_valid_study_status() -> None:
    status = Study(make_spec()).decide().status
    assert StudyStatus.model_validate(status).model_dump(mode="json", exclude_none=True) == status


def test_invalid_spec_fails_the_study_naming_the_field() -> None:
    spec = make_spec()
    spec["manifest"]["completionCriteria"]["maxRetriesPerCell"] = 0
    spec["manifest"]["surfaces"].append({"id": "no-such-surface"})
    study = Study(spec)
    decision = study.decide()
    assert decision.status["state"] == "failed" and decision.create == []
    assert "manifest.completionCriteria.maxRetriesPerCell" in decision.status["message"]
    assert "manifest.surfaces[2].id" in decision.status["message"]
    ready, failed_ = (next(c for c in decision.status["conditions"] if c["type"] == t) for t in ("Ready", "Failed"))
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert (failed_["status"], failed_["reason"]) == ("True", "InvalidSpec")
    assert [e.reason for e in decision.events] == ["ManifestReceived", "Validating", "InvalidSpec"]
    assert decision.events[-1].type == "Warning"
    assert decision.status["completedAt"] == "2030-01-01T12:00:00Z"


def test_deadline_in_the_past_fails_the_study_with_deadline_in_past() -> None:
    study = Study(make_spec(deadline="2029-12-31T00:00:00Z"))
    decision = study.step()
    assert decision.status["state"] == "failed" and decision.create == []
    assert study.condition("Failed")["reason"] == "DeadlineInPast"
    assert "manifest.deadline" in decision.status["message"]


def test_naive_times_are_taken_as_utc() -> None:
    study = Study(make_spec())
    naive = Study(make_spec(), created_at=study.created_at.replace(tzinfo=None))
    assert naive.decide(study.created_at.replace(tzinfo=None)) == study.decide()


def test_deadline_is_recorded_in_status() -> None:
    decision = Study(make_spec(deadline="2030-02-01T00:00:00Z")).decide()
    # 8 required cells at a 0.95 threshold, 732 hours before the deadline, nothing run yet.
    assert decision.status["deadline"] == {
        "deadline": "2030-02-01T00:00:00Z",
        "setBy": "deadline",
        "timeRemainingSeconds": 2_635_200,
        "cellsNeeded": 8,
        "requiredRate": 0.01093,
        "bottleneckSurface": "openai-api",
        "checkedAt": "2030-01-01T12:00:00Z",
        "atRisk": False,
        "missed": False,
    }


def test_warnings_are_recorded_and_announced_once() -> None:
    study = Study(make_spec(max_retries=1))
    first = study.step()
    assert any("maxRetriesPerCell" in w for w in first.status["warnings"])
    assert [e.reason for e in first.events if e.type == "Warning"] == ["SpecWarnings"]
    again = study.step()
    assert not [e for e in again.events if e.reason == "SpecWarnings"]
    assert again.status["warnings"] == first.status["warnings"]


def test_a_warning_that_appears_later_is_announced_when_it_appears() -> None:
    study = Study(make_spec(deadline="2030-01-01T14:00:00Z"))
    assert not [e for e in study.step().events if e.reason == "SpecWarnings"]
    later = study.step(at(3_700))
    assert [e.message for e in later.events if e.reason == "SpecWarnings"] == [
        "manifest.deadline: less than 1 hour away"
    ]


def test_study_created_paused_waits_in_paused_without_starting_cells() -> None:
    study = Study(make_spec(paused=True))
    decision = study.step()
    assert decision.status["state"] == "paused" and decision.create == []
    assert [e.reason for e in decision.events] == ["ManifestReceived", "Validating", "Queued", "Paused"]
    assert study.condition("Paused")["status"] == "True"
    assert "startedAt" not in decision.status
    study.spec["paused"] = False
    resumed = study.step(at(10))
    assert resumed.status["state"] == "executing" and len(resumed.create) == 8
    assert [e.reason for e in resumed.events] == ["Resumed"]
    assert resumed.status["startedAt"] == "2030-01-01T12:00:10Z"


def test_paused_study_starts_no_new_cells_but_records_in_flight_outcomes() -> None:
    study = Study(make_spec(queries=5, parallelism=3))
    first = study.step()
    study.spec["paused"] = True
    paused = study.step(at(1))
    assert paused.status["state"] == "paused" and paused.create == []
    assert [e.reason for e in paused.events] == ["Paused"]
    assert study.condition("Paused")["status"] == "True"
    assert study.condition("Paused")["lastTransitionTime"] == "2030-01-01T12:00:01Z"
    for job in first.create:
        study.finish(job.name, succeeded(job, at=at(2)))
    after = study.step(at(3))
    assert after.create == [] and after.status["state"] == "paused"
    assert after.status["progress"]["completedCells"] == 3 and after.status["progress"]["executingCells"] == 0
    assert sorted(after.delete) == sorted(j.name for j in first.create)


def test_resume_completes_a_study_whose_last_cell_ended_while_paused() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",)))
    [job] = study.step().create
    study.spec["paused"] = True
    study.step(at(1))
    study.finish(job.name, succeeded(job, at=at(2)))
    still_paused = study.step(at(3))
    assert still_paused.status["state"] == "paused"
    assert still_paused.status["progress"]["completedCells"] == 1
    study.spec["paused"] = False
    resumed = study.step(at(4))
    assert resumed.status["state"] == "complete"
    assert [e.reason for e in resumed.events] == ["Resumed", "ValidatingResults", "Completed"]
    assert resumed.status["completedAt"] == "2030-01-01T12:00:04Z"


def test_cancel_deletes_every_live_job_and_keeps_progress() -> None:
    study = Study(make_spec(queries=3, parallelism=4))
    first = study.step()
    done = first.create[0]
    study.finish(done.name, succeeded(done, at=at(1)))
    study.spec["cancel"] = {"reason": "budget cut"}
    study.generation = 2
    decision = study.step(at(2))
    assert decision.status["state"] == "cancelled"
    assert sorted(decision.delete) == sorted(j.name for j in first.create)
    assert "budget cut" in decision.status["message"]
    assert decision.status["progress"]["completedCells"] == 1
    assert decision.status["progress"]["executingCells"] == 0 and decision.status["progress"]["pendingCells"] == 11
    records = read_records(StudyStatus.model_validate(decision.status).checkpoint)
    assert records is not None and records[done.cell.index].state is CellState.COMPLETED
    assert [e.reason for e in decision.events] == ["CellsCompleted", "Cancelled"]
    assert decision.status["observedGeneration"] == 2 and decision.status["completedAt"] == "2030-01-01T12:00:02Z"


def test_terminal_study_records_nothing_and_deletes_leftover_jobs() -> None:
    study = Study(make_spec(queries=2, parallelism=2), status=None)
    first = study.step()
    study.spec["cancel"] = {"reason": "stop"}
    study.step(at(1))
    frozen = copy.deepcopy(study.status)
    leftover = succeeded(first.create[0], at=at(2))
    decision = study.decide(at(3), jobs=[leftover])
    assert decision.status == frozen and decision.create == [] and decision.events == []
    assert decision.delete == [leftover.name]


def test_complete_study_sets_complete_and_ready() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc", "uk-lon")))
    for job in study.step().create:
        study.finish(job.name, succeeded(job, at=at(1)))
    decision = study.step(at(2))
    assert decision.status["state"] == "complete"
    assert study.condition("Complete")["status"] == "True" and study.condition("Ready")["status"] == "True"
    assert study.condition("Complete")["reason"] == "Completed"
    assert decision.status["progress"]["summary"] == "2/2" and decision.status["progress"]["percent"] == "100%"
    assert study.jobs == {}


def test_condition_transition_time_moves_only_when_its_status_flips() -> None:
    study = Study(make_spec(queries=3, parallelism=2))
    first = study.step()
    ready_since = study.condition("Ready")["lastTransitionTime"]
    job = first.create[0]
    study.finish(job.name, succeeded(job, at=at(5)))
    study.step(at(10))
    assert study.condition("Ready")["lastTransitionTime"] == ready_since
    study.spec["paused"] = True
    study.step(at(20))
    assert study.condition("Paused")["lastTransitionTime"] == "2030-01-01T12:00:20Z"
    assert study.condition("Ready")["lastTransitionTime"] == ready_since


def test_corrupt_checkpoint_fails_the_study_instead_of_rerunning_it() -> None:
    study = Study(make_spec())
    study.step()
    assert study.status is not None
    study.status["checkpoint"]["cells"] = "garbage!"
    decision = study.step(at(1))
    assert decision.status["state"] == "failed" and study.condition("Failed")["reason"] == "CheckpointUnreadable"
    assert study.jobs == {}


@pytest.mark.parametrize(
    ("edit", "part"),
    [
        (lambda m: m["queries"].append({"text": "one more"}), "manifest.queries"),
        (lambda m: m["queries"][0].update(text="Which grinder?"), "manifest.queries"),
        (lambda m: m["surfaces"].reverse(), "manifest.surfaces"),
        (lambda m: m["locations"].reverse(), "manifest.locations"),
    ],
)
def test_a_changed_cell_matrix_holds_the_study_and_records_nothing_until_it_is_put_back(
    edit: Callable[[dict[str, Any]], None], part: str
) -> None:
    study = Study(make_spec(queries=2, surfaces=("openai-api", "grok"), optional=("grok",)))
    first = study.step()
    started = copy.deepcopy(study.spec["manifest"])
    recorded = study.status["checkpoint"] if study.status else None
    edit(study.spec["manifest"])
    for job in first.create:
        study.finish(job.name, succeeded(job, at=at(1)))
    held = study.step(at(2))
    assert held.status["state"] == "executing"
    assert study.condition("SpecValid")["status"] == "False"
    assert study.condition("SpecValid")["reason"] == "MatrixChanged"
    assert part in held.status["message"] and "create a new Study" in held.status["message"]
    assert held.status["checkpoint"] == recorded and held.create == [] and held.delete == []
    assert [e.reason for e in held.events] == ["SpecInvalid"]
    study.spec["manifest"] = started
    back = study.step(at(3))
    assert study.condition("SpecValid")["status"] == "True"
    assert back.status["progress"]["completedCells"] == len(first.create)


def test_a_study_started_before_fingerprints_is_judged_by_its_cell_count() -> None:
    study = Study(make_spec(queries=2))
    study.step()
    assert study.status is not None
    del study.status["matrix"]
    study.spec["manifest"]["queries"].append({"text": "one more"})
    study.step(at(1))
    assert study.condition("SpecValid")["reason"] == "MatrixChanged"


def test_other_fields_may_change_mid_study() -> None:
    study = Study(make_spec(queries=2))
    study.step()
    study.spec["manifest"]["completionCriteria"]["requiredSurfaces"]["coverageThreshold"] = 0.5
    study.spec["manifest"]["qualityGates"]["minResponseLength"] = 10
    study.spec["manifest"]["name"] = "Renamed"
    study.spec["executor"]["parallelism"] = 3
    status = study.step(at(1)).status
    assert status["state"] == "executing" and not any(c["type"] == "SpecValid" for c in status["conditions"])


def test_spec_generation_is_observed() -> None:
    study = Study(make_spec(), generation=7)
    assert study.decide().status["observedGeneration"] == 7


def test_unreadable_status_fails_the_study() -> None:
    study = Study(make_spec(), status={"state": "no-such-state"})
    decision = study.decide(jobs=[running(j) for j in Study(make_spec()).decide().create])
    assert decision.status["state"] == "failed" and len(decision.delete) == 8


def test_failed_job_message_reaches_the_cell_failed_event() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",), max_retries=1, threshold=0.0))
    [job] = study.step().create
    study.finish(job.name, failed(job, result(success=False, code="QUOTA_EXCEEDED"), at=at(1)))
    decision = study.step(at(2))
    [event] = [e for e in decision.events if e.reason == "CellsFailed"]
    assert event.type == "Warning" and "q0-openai-api-us-nyc" in event.message and "QUOTA_EXCEEDED" in event.message
    assert decision.status["state"] == "complete"
