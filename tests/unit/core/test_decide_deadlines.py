"""Deadlines as `decide()` drives them: figures, at-risk escalation, parallelism boost, the deadline itself."""

from __future__ import annotations

import pytest
from core_builders import Decided, Study, at, deadline_spec, failed, result, succeeded

from bentham.api.status import StudyStatus
from bentham.core.checkpoint import CellState, read_records

H = 3600.0


def reasons(decision: Decided) -> list[str]:
    return [e.reason for e in decision.events]


def events_of(decision: Decided) -> list[str]:
    return [n.event for n in decision.notifications]


def finish_all(study: Study, when: float, *, ok: bool = True) -> None:
    for job in study.running_jobs():
        message = result() if ok else result(success=False, code="TIMEOUT")
        study.finish(job.name, succeeded(job, message, at=at(when)))


def test_deadline_figures_are_in_status_and_the_study_is_looked_at_again_within_a_minute() -> None:
    decision = Study(deadline_spec()).step()
    deadline = decision.status["deadline"]
    assert deadline["timeRemainingSeconds"] == 4 * H and deadline["cellsNeeded"] == 8
    assert deadline["requiredRate"] == 2.0 and not deadline["atRisk"]
    assert decision.requeue_after == 60.0


def test_requeue_never_waits_past_the_deadline() -> None:
    study = Study(deadline_spec())
    study.step()
    assert study.step(at(4 * H - 20)).requeue_after == 20.0


def test_between_refreshes_a_reconcile_that_changes_nothing_writes_the_same_status() -> None:
    study = Study(deadline_spec())
    first = study.step()
    quiet = study.step(at(30))
    assert quiet.status == first.status and quiet.events == [] and quiet.notifications == []
    assert quiet.requeue_after == 30.0
    refreshed = study.step(at(60))
    assert refreshed.status["deadline"]["checkedAt"] == "2030-01-01T12:01:00Z"
    assert refreshed.status["deadline"]["timeRemainingSeconds"] == 4 * H - 60


def test_a_real_change_refreshes_the_figures_at_once() -> None:
    study = Study(deadline_spec())
    first = study.step()
    finish_all(study, 10)
    decision = study.step(at(10))
    assert decision.status["deadline"]["checkedAt"] == "2030-01-01T12:00:10Z"
    assert decision.status["deadline"]["cellsNeeded"] == first.status["deadline"]["cellsNeeded"] - 2


def test_zero_progress_becomes_at_risk_with_condition_event_and_one_notification() -> None:
    study = Study(deadline_spec())
    study.step()
    assert study.condition("AtRisk")["status"] == "False"
    decision = study.step(at(1 * H))  # a quarter of the time used, nothing completed
    assert decision.status["deadline"]["atRisk"] is True
    assert study.condition("AtRisk")["reason"] == "NoProgress"
    assert [e.type for e in decision.events if e.reason == "AtRisk"] == ["Warning"]
    [note] = [n for n in decision.notifications if n.event == "study.at_risk"]
    assert note.id.endswith(":study.at_risk:2030-01-01T13:00:00Z:0")
    assert note.payload["deadline"]["atRisk"] is True and note.payload["reason"] == "NoProgress"


def test_at_risk_is_not_announced_again_on_later_reconciles() -> None:
    study = Study(deadline_spec())
    study.step()
    study.step(at(1 * H))
    for moment in (1 * H, 1 * H + 1, 1 * H + 90, 1.5 * H):
        later = study.step(at(moment))
        assert "AtRisk" not in reasons(later) and "study.at_risk" not in events_of(later)


def test_feeding_the_at_risk_decision_back_repeats_nothing() -> None:
    study = Study(deadline_spec())
    study.step()
    decision = study.decide(at(1 * H))
    study.status = decision.status
    again = study.decide(at(1 * H))
    assert again.status == decision.status and again.events == [] and again.notifications == []


def test_crossing_half_and_three_quarters_of_the_time_announces_again_once_each() -> None:
    study = Study(deadline_spec())
    study.step()
    announced = []
    for minute in range(60, 240, 5):
        decision = study.step(at(minute * 60))
        announced += [n.id.rsplit(":", 1)[1] for n in decision.notifications if n.event == "study.at_risk"]
    assert announced == ["0", "1", "2"]


def test_recovering_and_becoming_at_risk_again_is_announced_again() -> None:
    study = Study(deadline_spec(queries=4, threshold=1.0))
    study.step()
    assert "AtRisk" in reasons(study.step(at(1 * H)))  # 16 needed, none done
    cleared = []
    for moment in (1 * H + 60, 1 * H + 120, 1 * H + 180):
        finish_all(study, moment)
        cleared += reasons(study.step(at(moment)))
    assert cleared.count("BackOnSchedule") == 1 and study.condition("AtRisk")["status"] == "False"
    # Nothing more finishes: by 14:45 the rate (9 in 2.75 h) is below 0.8 x the required (7 in 1.25 h).
    again = study.step(at(2.75 * H))
    [note] = [n for n in again.notifications if n.event == "study.at_risk"]
    assert note.id.endswith(":study.at_risk:2030-01-01T14:45:00Z:1")
    assert study.condition("AtRisk")["reason"] == "BehindSchedule"


def test_at_risk_raises_parallelism_step_by_step_up_to_max_then_lowers_it_when_back_on_schedule() -> None:
    study = Study(deadline_spec(queries=10))
    study.step()
    raised = study.step(at(1 * H))
    assert raised.status["parallelism"] == 3 and "ParallelismRaised" in reasons(raised)
    assert len(raised.create) == 1  # the extra slot is filled at once
    assert study.step(at(1 * H + 30)).status["parallelism"] == 3  # at most once a minute
    for k in range(1, 6):
        study.step(at(1 * H + 60 * k))
    assert study.status is not None and study.status["parallelism"] == 6
    assert len(study.running_jobs()) == 6
    # Cells complete quickly now: once the rate reaches the required rate the boost is undone.
    moment = 1 * H + 300
    while study.condition("AtRisk")["status"] == "True":
        moment += 10
        finish_all(study, moment)
        decision = study.step(at(moment))
    assert decision.status["parallelism"] == 2 and "ParallelismLowered" in reasons(decision)
    assert "BackOnSchedule" in reasons(decision) and len(decision.create) == 2  # every slot was free


def test_without_max_parallelism_an_at_risk_study_keeps_its_parallelism() -> None:
    study = Study(deadline_spec(max_parallelism=None))
    study.step()
    decision = study.step(at(1 * H))
    assert decision.status["deadline"]["atRisk"] and decision.status["parallelism"] == 2
    assert "ParallelismRaised" not in reasons(decision)


def test_paused_time_does_not_count_against_the_current_rate() -> None:
    study = Study(deadline_spec(queries=4, parallelism=4, deadline="2030-01-03T00:00:00Z"))
    study.step()
    finish_all(study, 1 * H)
    study.step(at(1 * H))  # 4 done in the first running hour; 4 more start
    study.spec["paused"] = True
    study.step(at(1 * H))
    assert study.status is not None and study.status["runningSeconds"] == 3600 and "runningSince" not in study.status
    later = study.step(at(11 * H))  # ten paused hours later
    assert later.status["deadline"]["currentRate"] == pytest.approx(4.0)
    study.spec["paused"] = False
    resumed = study.step(at(12 * H))
    assert resumed.status["runningSince"] == "2030-01-02T00:00:00Z" and resumed.status["runningSeconds"] == 3600


def test_a_paused_study_is_still_watched_and_can_become_at_risk() -> None:
    study = Study(deadline_spec(paused=True))
    study.step()
    decision = study.step(at(1 * H))
    assert decision.status["state"] == "paused" and decision.status["deadline"]["atRisk"] is True
    assert "study.at_risk" in events_of(decision)
    assert decision.status["parallelism"] == 2  # nothing can start: nothing to raise


def test_at_the_deadline_a_study_meeting_its_thresholds_skips_the_cells_not_started_and_completes() -> None:
    study = Study(deadline_spec(queries=4, parallelism=4, threshold=0.5, optional=("anthropic-api",)))
    study.step()
    finish_all(study, 600)
    study.step(at(600))  # 4 of the 8 openai cells completed: openai meets 0.5; 4 more start
    in_flight = [j.name for j in study.running_jobs()]
    assert len(in_flight) == 4
    at_deadline = study.step(at(4 * H))
    # Those in flight finish and are recorded; the 8 not started are skipped, never silently pending.
    assert at_deadline.status["state"] == "executing"
    assert at_deadline.create == [] and at_deadline.delete == []
    progress = at_deadline.status["progress"]
    assert (progress["skippedCells"], progress["pendingCells"], progress["executingCells"]) == (8, 0, 4)
    assert progress["bySurface"]["anthropic-api"]["skipped"] == 8
    finish_all(study, 4 * H + 30)
    decision = study.step(at(4 * H + 40))
    assert decision.status["state"] == "complete"
    assert sorted(decision.delete) == sorted(in_flight)
    assert decision.status["progress"]["completedCells"] == 8 and decision.status["progress"]["skippedCells"] == 8
    assert "8 cells skipped" in decision.status["message"] and decision.create == []
    assert events_of(decision) == ["study.completed"]
    assert study.condition("AtRisk")["status"] == "False"


def test_skipped_cells_run_after_all_when_the_deadline_moves_later() -> None:
    study = Study(deadline_spec(queries=4, parallelism=4, threshold=0.5, optional=("anthropic-api",)))
    study.step()
    finish_all(study, 600)
    study.step(at(600))
    assert study.step(at(4 * H)).status["progress"]["skippedCells"] == 8
    study.spec["manifest"]["deadline"] = "2030-01-02T16:00:00Z"
    finish_all(study, 4 * H + 30)
    moved = study.step(at(4 * H + 40))
    assert moved.status["state"] == "executing" and moved.status["progress"]["skippedCells"] == 0
    assert len(moved.create) == 4  # the slots freed go to the cells skipped before


def test_at_the_deadline_below_threshold_the_study_waits_for_a_person_by_default() -> None:
    study = Study(deadline_spec())
    first = study.step()
    decision = study.step(at(4 * H))
    assert decision.status["state"] == "human_intervention_required"
    assert decision.status["intervention"]["reason"] == "DeadlineMissed"
    assert decision.status["intervention"]["allCellsStopped"] is True
    assert decision.status["deadline"]["missed"] is True
    assert "deadline" in decision.status["message"] and "interventionAck" in decision.status["message"]
    assert "HumanInterventionRequired" in reasons(decision)
    assert events_of(decision).count("study.needs_intervention") == 1
    # Cells in flight finish and are recorded; nothing new starts.
    assert decision.delete == [] and decision.create == []
    for job in first.create:
        study.finish(job.name, succeeded(job, at=at(4 * H + 10)))
    after = study.step(at(4 * H + 20))
    assert after.create == [] and after.status["progress"]["completedCells"] == 2
    assert after.notifications == [] and "HumanInterventionRequired" not in reasons(after)
    assert "runningSince" not in after.status  # nothing may start: not running


def test_at_the_deadline_the_fail_policy_fails_the_study_and_deletes_its_jobs() -> None:
    study = Study(deadline_spec(policy={"onDeadlineMissed": "Fail"}))
    first = study.step()
    decision = study.step(at(4 * H + 1))
    assert decision.status["state"] == "failed"
    assert study.condition("Failed")["reason"] == "DeadlineMissed"
    assert "2030-01-01T16:00:00Z" in decision.status["message"]
    assert sorted(decision.delete) == sorted(j.name for j in first.create)
    assert events_of(decision) == ["study.failed"]


def test_acknowledging_a_missed_deadline_runs_on_past_it_without_asking_again() -> None:
    study = Study(deadline_spec(queries=2))
    study.step()
    study.step(at(4 * H))
    study.spec["interventionAck"] = "go-on-late"
    resumed = study.step(at(4 * H + 60))
    assert resumed.status["state"] == "executing" and "intervention" not in resumed.status
    assert reasons(resumed)[:2] == ["InterventionAcknowledged", "Resumed"]
    assert events_of(resumed) == ["study.resumed"]
    assert resumed.status["deadline"]["missed"] is True
    later = study.step(at(5 * H))
    assert later.status["state"] == "executing" and "HumanInterventionRequired" not in reasons(later)


def test_past_the_deadline_a_study_completes_as_soon_as_its_thresholds_are_met() -> None:
    study = Study(deadline_spec(queries=1, parallelism=4, threshold=0.5))
    study.step()
    study.step(at(4 * H))  # missed: waits for a person, its 4 cells still in flight
    finish_all(study, 4 * H + 30)
    decision = study.step(at(4 * H + 30))
    assert decision.status["state"] == "complete"


def test_extending_the_deadline_with_the_ack_watches_the_new_deadline_afresh() -> None:
    study = Study(deadline_spec())
    study.step()
    study.step(at(4 * H))
    study.spec["manifest"]["deadline"] = "2030-01-02T16:00:00Z"
    study.spec["interventionAck"] = "more-time"
    decision = study.step(at(4 * H + 60))
    assert decision.status["state"] == "executing"
    assert decision.status["deadline"]["deadline"] == "2030-01-02T16:00:00Z"
    assert decision.status["deadline"]["missed"] is False


def test_a_paused_study_at_its_deadline_stays_paused_until_unpaused_then_waits_for_a_person() -> None:
    study = Study(deadline_spec())
    study.step()
    study.spec["paused"] = True
    study.step(at(60))
    at_deadline = study.step(at(4 * H))
    assert at_deadline.status["state"] == "paused" and at_deadline.status["intervention"]["reason"] == "DeadlineMissed"
    assert "study.needs_intervention" in events_of(at_deadline)
    assert "waiting for a person" in at_deadline.status["message"]
    study.spec["paused"] = False
    unpaused = study.step(at(4 * H + 60))
    assert unpaused.status["state"] == "human_intervention_required" and unpaused.create == []
    assert reasons(unpaused) == ["HumanInterventionRequired"] and unpaused.notifications == []


def test_cell_records_survive_the_deadline_outcome() -> None:
    study = Study(deadline_spec(policy={"onDeadlineMissed": "Fail"}))
    first = study.step()
    study.finish(first.create[0].name, failed(first.create[0], result(success=False, code="TIMEOUT"), at=at(5)))
    decision = study.step(at(4 * H))
    records = read_records(StudyStatus.model_validate(decision.status).checkpoint)
    assert records is not None and all(r.state is not CellState.RUNNING for r in records)
    assert decision.status["runningSeconds"] == 4 * H and "runningSince" not in decision.status


def test_removing_the_deadline_clears_the_at_risk_condition_and_the_figures() -> None:
    study = Study(deadline_spec())
    study.step()
    study.step(at(1 * H))
    assert study.condition("AtRisk")["status"] == "True"
    del study.spec["manifest"]["deadline"]
    decision = study.step(at(1 * H + 10))
    assert "deadline" not in decision.status and study.condition("AtRisk")["reason"] == "NoDeadline"
    assert study.condition("AtRisk")["status"] == "False" and decision.status["parallelism"] == 2
    assert decision.requeue_after is None
