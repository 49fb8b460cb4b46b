"""`execution.timeouts.studyTimeoutMs` as `decide()` drives it: running time, then the deadline policy."""

from __future__ import annotations

from typing import Any

from core_builders import Study, at, make_spec, result, succeeded

H = 3600.0


def timeout_spec(hours: float, *, deadline: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """A study of 8 cells at parallelism 2 whose running time ends after `hours`."""
    spec = make_spec(queries=2, parallelism=2, deadline=deadline, **kwargs)
    spec["manifest"]["execution"] = {"timeouts": {"studyTimeoutMs": int(hours * H * 1000)}}
    return spec


def finish_all(study: Study, when: float) -> None:
    for job in study.running_jobs():
        study.finish(job.name, succeeded(job, result(), at=at(when)))


def test_the_time_out_is_the_studys_deadline_when_it_has_none() -> None:
    decision = Study(timeout_spec(2)).step()
    deadline = decision.status["deadline"]
    assert deadline["deadline"] == "2030-01-01T14:00:00Z" and deadline["setBy"] == "studyTimeout"
    assert deadline["timeRemainingSeconds"] == 2 * H and deadline["cellsNeeded"] == 8
    assert decision.requeue_after == 60.0


def test_whichever_comes_first_sets_the_end() -> None:
    later_deadline = Study(timeout_spec(2, deadline="2030-01-01T16:00:00Z")).step()
    assert later_deadline.status["deadline"]["setBy"] == "studyTimeout"
    earlier_deadline = Study(timeout_spec(5, deadline="2030-01-01T16:00:00Z")).step()
    assert earlier_deadline.status["deadline"] == earlier_deadline.status["deadline"] | {
        "deadline": "2030-01-01T16:00:00Z",
        "setBy": "deadline",
    }


def test_paused_time_does_not_count_towards_the_time_out() -> None:
    study = Study(timeout_spec(2))
    study.step()
    study.spec["paused"] = True
    study.step(at(1 * H))  # one running hour used, one left
    paused = study.step(at(11 * H))
    assert paused.status["state"] == "paused"
    assert paused.status["deadline"]["timeRemainingSeconds"] == 1 * H  # what is left, while the clock runs on
    assert paused.events == [] and paused.notifications == []  # a moving end is the same end: nothing re-announced
    study.spec["paused"] = False
    resumed = study.step(at(12 * H))
    assert resumed.status["state"] == "executing"
    assert resumed.status["deadline"]["deadline"] == "2030-01-02T01:00:00Z"  # resumed at 00:00 with an hour left
    assert study.step(at(13 * H - 1)).status["state"] == "executing"
    timed_out = study.step(at(13 * H))
    assert timed_out.status["state"] == "human_intervention_required"
    assert timed_out.status["intervention"]["reason"] == "StudyTimedOut"
    assert "study time-out (120 min of running time" in timed_out.status["intervention"]["message"]
    assert timed_out.create == []


def test_the_time_out_is_looked_at_again_when_it_comes() -> None:
    study = Study(timeout_spec(1))
    study.step()
    assert study.step(at(1 * H - 20)).requeue_after == 20.0


def test_the_fail_policy_fails_a_timed_out_study() -> None:
    study = Study(timeout_spec(1) | {"policy": {"onDeadlineMissed": "Fail"}})
    first = study.step()
    decision = study.step(at(1 * H))
    assert decision.status["state"] == "failed"
    assert study.condition("Failed")["reason"] == "StudyTimedOut"
    assert decision.status["message"].startswith("Timed out: the study time-out (60 min of running time")
    assert sorted(decision.delete) == sorted(j.name for j in first.create)


def test_at_the_time_out_a_study_meeting_its_thresholds_skips_the_rest_and_completes() -> None:
    study = Study(timeout_spec(1, threshold=0.25))
    study.step()
    finish_all(study, 600)
    study.step(at(600))
    finish_all(study, 1200)
    met = study.step(at(1200))  # 4 of 8 cells done, 2 started: each surface above a quarter
    assert met.status["deadline"]["cellsNeeded"] == 0 and met.status["progress"]["pendingCells"] == 2
    timed_out = study.step(at(1 * H))
    progress = timed_out.status["progress"]
    assert progress["skippedCells"] > 0 and progress["pendingCells"] == 0
    finish_all(study, 1 * H + 10)
    done = study.step(at(1 * H + 20))
    assert done.status["state"] == "complete"
    assert done.status["message"].startswith("Complete at the study time-out")


def test_a_person_acknowledging_the_time_out_runs_on_without_being_asked_again() -> None:
    study = Study(timeout_spec(1))
    study.step()
    study.step(at(1 * H))
    study.spec["interventionAck"] = "carry-on"
    resumed = study.step(at(1 * H + 60))
    assert resumed.status["state"] == "executing" and resumed.status["deadline"]["missed"] is True
    later = study.step(at(3 * H))
    assert later.status["state"] == "executing" and later.status["deadline"]["deadline"] == "2030-01-01T13:00:00Z"


def test_a_longer_time_out_is_watched_afresh() -> None:
    study = Study(timeout_spec(1))
    study.step()
    study.step(at(1 * H))  # timed out: waits for a person, not running
    study.spec["manifest"]["execution"]["timeouts"]["studyTimeoutMs"] = int(3 * H * 1000)
    study.spec["interventionAck"] = "more-time"
    resumed = study.step(at(2 * H))
    assert resumed.status["state"] == "executing"
    # One running hour used before the time-out; resumed at 14:00 with two hours left.
    assert resumed.status["deadline"]["deadline"] == "2030-01-01T16:00:00Z"
    assert resumed.status["deadline"]["missed"] is False
    assert study.step(at(4 * H)).status["intervention"]["reason"] == "StudyTimedOut"
