"""Human intervention: a required surface failing again and again, and a person resuming the study."""

from __future__ import annotations

from typing import Any

from core_builders import Decided, Study, at, make_spec, result, succeeded

from bentham.api.status import StudyStatus

SURFACES = ("openai-api", "anthropic-api")


def failing_study(*, queries: int = 8, policy: dict[str, Any] | None = None, **kwargs: Any) -> Study:
    """16 cells (openai-api at even indexes), 10 in flight after the first step."""
    spec = make_spec(queries=queries, surfaces=SURFACES, locations=("us-nyc",), parallelism=10, **kwargs)
    if policy is not None:
        spec["policy"] = policy
    study = Study(spec)
    study.step()
    return study


def finish(study: Study, surface: str, message: str, when: float, *, count: int | None = None) -> None:
    """Finishes the running Jobs of `surface` (the first `count` of them) with `message`."""
    jobs = [j for j in study.running_jobs() if (j.cell_index % 2 == 0) == (surface == "openai-api")]
    for job in jobs[:count]:
        study.finish(job.name, succeeded(job, message, at=at(when)))


CAPTCHA = result(success=False, code="CAPTCHA")
TIMEOUT = result(success=False, code="TIMEOUT")


def reasons(decision: Decided) -> list[str]:
    return [e.reason for e in decision.events]


def started_surfaces(decision: Decided) -> set[str]:
    return {job.cell.surface.value for job in decision.create}


def test_five_blocking_failures_in_a_row_block_the_surface_and_ask_for_a_person() -> None:
    study = failing_study()
    finish(study, "openai-api", CAPTCHA, 5)
    decision = study.step(at(5))
    assert decision.status["state"] == "human_intervention_required"
    intervention = decision.status["intervention"]
    assert intervention["reason"] == "SurfaceFailing" and intervention["blockedSurfaces"] == ["openai-api"]
    assert intervention["allCellsStopped"] is False and "ack" not in intervention
    assert "openai-api" in decision.status["message"] and "interventionAck" in decision.status["message"]
    assert decision.status["consecutiveFailures"] == {"openai-api": 5}
    [event] = [e for e in decision.events if e.reason == "HumanInterventionRequired"]
    assert event.type == "Warning" and "openai-api" in event.message
    assert [n.event for n in decision.notifications] == ["study.needs_intervention"]


def test_a_blocked_surface_starts_nothing_while_the_other_surfaces_go_on() -> None:
    study = failing_study()
    finish(study, "openai-api", CAPTCHA, 5)
    blocked = study.step(at(5))
    assert started_surfaces(blocked) == {"anthropic-api"} and len(blocked.create) == 3  # the freed slots
    assert "runningSince" in blocked.status  # cells still start: running time counts
    finish(study, "anthropic-api", result(), 6)
    decision = study.step(at(120))  # the openai retries are long due
    assert decision.create == [] and decision.status["state"] == "human_intervention_required"
    assert decision.status["progress"]["bySurface"]["openai-api"]["pending"] == 8
    assert decision.notifications == [] and "HumanInterventionRequired" not in reasons(decision)


def test_a_completed_attempt_resets_the_count() -> None:
    study = failing_study()
    finish(study, "openai-api", CAPTCHA, 5, count=4)
    study.step(at(5))
    finish(study, "openai-api", result(), 6, count=1)
    decision = study.step(at(6))
    assert decision.status["state"] == "executing" and "openai-api" not in decision.status["consecutiveFailures"]


def test_failures_not_listed_in_the_policy_neither_count_nor_reset() -> None:
    study = failing_study()
    finish(study, "openai-api", CAPTCHA, 5, count=4)
    study.step(at(5))
    finish(study, "openai-api", TIMEOUT, 6, count=1)
    assert study.step(at(6)).status["consecutiveFailures"] == {"openai-api": 4}
    late = [j for j in study.running_jobs() if j.attempt == 2 and j.cell_index % 2 == 0]
    study.finish(late[0].name, succeeded(late[0], CAPTCHA, at=at(60)))
    assert study.step(at(60)).status["state"] == "human_intervention_required"


def test_the_count_and_the_failures_that_count_are_configurable() -> None:
    study = failing_study(consecutive_failure_limit=2, policy={"interventionFailures": ["TIMEOUT"]})
    finish(study, "openai-api", CAPTCHA, 5, count=3)
    assert study.step(at(5)).status["state"] == "executing"
    finish(study, "openai-api", TIMEOUT, 6, count=2)
    assert study.step(at(6)).status["intervention"]["blockedSurfaces"] == ["openai-api"]


def test_an_optional_surface_is_never_blocked() -> None:
    study = failing_study(optional=("openai-api",))
    finish(study, "openai-api", CAPTCHA, 5)
    decision = study.step(at(5))
    assert decision.status["state"] == "executing" and decision.status["consecutiveFailures"] == {}


def test_setting_intervention_ack_resumes_the_study_and_unblocks_the_surface() -> None:
    study = failing_study()
    finish(study, "openai-api", CAPTCHA, 5)
    study.step(at(5))
    study.spec["interventionAck"] = "2030-01-01 rotated the credentials"
    decision = study.step(at(120))
    assert decision.status["state"] == "executing" and "intervention" not in decision.status
    assert reasons(decision)[:2] == ["InterventionAcknowledged", "Resumed"]
    assert [n.event for n in decision.notifications] == ["study.resumed"]
    assert decision.status["consecutiveFailures"] == {}
    assert "openai-api" in started_surfaces(decision)
    assert study.decide(at(120)).events == []  # the same ack resolves nothing twice


def test_an_ack_set_before_the_intervention_does_not_resolve_it() -> None:
    study = failing_study()
    study.spec["interventionAck"] = "old"
    finish(study, "openai-api", CAPTCHA, 5)
    opened = study.step(at(5))
    assert opened.status["intervention"]["ack"] == "old"
    assert study.step(at(10)).status["state"] == "human_intervention_required"
    study.spec["interventionAck"] = "new"
    assert study.step(at(11)).status["state"] == "executing"


def test_pausing_a_study_that_waits_for_a_person_then_unpausing_it_waits_again() -> None:
    study = failing_study()
    finish(study, "openai-api", CAPTCHA, 5)
    study.step(at(5))
    study.spec["paused"] = True
    paused = study.step(at(10))
    assert paused.status["state"] == "paused" and paused.create == []
    assert "waiting for a person" in paused.status["message"]
    assert [n.event for n in paused.notifications] == ["study.paused"]
    study.spec["paused"] = False
    back = study.step(at(20))
    assert back.status["state"] == "human_intervention_required"
    assert reasons(back) == ["HumanInterventionRequired"] and back.notifications == []


def test_an_ack_while_paused_resolves_the_intervention_and_unpausing_resumes() -> None:
    study = failing_study()
    finish(study, "openai-api", CAPTCHA, 5)
    study.step(at(5))
    study.spec["paused"] = True
    study.step(at(10))
    study.spec["interventionAck"] = "fixed"
    acked = study.step(at(20))
    assert acked.status["state"] == "paused" and "intervention" not in acked.status
    study.spec["paused"] = False
    resumed = study.step(at(30))
    assert resumed.status["state"] == "executing" and reasons(resumed)[0] == "Resumed"


def test_a_second_surface_failing_is_added_and_announced_once() -> None:
    study = failing_study()
    finish(study, "openai-api", CAPTCHA, 5)
    study.step(at(5))
    finish(study, "anthropic-api", CAPTCHA, 6)
    decision = study.step(at(6))
    assert decision.status["intervention"]["blockedSurfaces"] == ["openai-api", "anthropic-api"]
    assert [n.event for n in decision.notifications] == ["study.needs_intervention"]
    assert decision.notifications[0].id.endswith(":anthropic-api")
    assert decision.create == []


def test_a_surface_with_nothing_left_to_run_is_not_blocked_by_failures_in_a_row() -> None:
    # 1 query: openai-api has a single cell; at threshold 0 its blocked cell puts nothing at risk.
    study = failing_study(queries=1, threshold=0.0, consecutive_failure_limit=1)
    finish(study, "openai-api", result(success=False, code="AUTH_FAILED"), 5)
    decision = study.step(at(5))
    assert decision.status["state"] == "executing" and decision.status["consecutiveFailures"] == {"openai-api": 1}
    assert decision.status["progress"]["bySurface"]["openai-api"]["blocked"] == 1


def test_a_waiting_study_with_a_deadline_writes_a_valid_study_status() -> None:
    study = failing_study(deadline="2030-01-01T13:00:00Z")
    finish(study, "openai-api", CAPTCHA, 5)
    status = study.step(at(5)).status
    assert "intervention" in status and "deadline" in status and "consecutiveFailures" in status
    assert StudyStatus.model_validate(status).model_dump(mode="json", exclude_none=True) == status


def test_a_fixable_failure_that_puts_the_threshold_at_risk_asks_a_person_instead_of_failing() -> None:
    # 10 cells of openai-api at 0.95: one AUTH_FAILED cell leaves at most 9/10 - fail-early would fail it.
    study = Study(make_spec(queries=10, surfaces=("openai-api",), locations=("us-nyc",), threshold=0.95,
                            parallelism=4))  # fmt: skip
    first = study.step().create
    study.finish(first[0].name, succeeded(first[0], result(success=False, code="AUTH_FAILED"), at=at(1)))
    asked = study.step(at(2))
    assert asked.status["state"] == "human_intervention_required"
    assert asked.status["intervention"]["blockedSurfaces"] == ["openai-api"]
    assert "AUTH_FAILED" in asked.status["message"] and "interventionAck" in asked.status["message"]
    assert asked.status["progress"]["bySurface"]["openai-api"]["blocked"] == 1
    assert asked.create == [] and asked.delete == [first[0].name]  # the others in flight finish
    for job in first[1:]:
        study.finish(job.name, succeeded(job, result(success=False, code="AUTH_FAILED"), at=at(3)))
    still = study.step(at(4))
    assert still.status["state"] == "human_intervention_required" and still.create == []
    assert still.status["progress"]["bySurface"]["openai-api"]["blocked"] == 4

    study.spec["interventionAck"] = "rotated the key"
    resumed = study.step(at(60))
    assert resumed.status["state"] == "executing"
    assert "reopening 4 blocked cells" in next(
        e.message for e in resumed.events if e.reason == "InterventionAcknowledged"
    )
    # Fresh budgets, new attempt numbers: no Job name is used twice.
    assert sorted((job.cell.index, job.attempt) for job in resumed.create) == [(0, 2), (1, 2), (2, 2), (3, 2)]
    for tick in range(61, 80):
        for observed in study.running_jobs():
            study.finish(observed.name, succeeded(observed, at=at(tick)))
        if study.step(at(tick)).status["state"] == "complete":
            break
    assert study.state == "complete"
    assert study.status is not None and study.status["progress"]["completedCells"] == 10


def test_a_reopened_cell_gets_a_fresh_budget_of_attempts() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",), threshold=1.0,
                            max_retries=2))  # fmt: skip
    [job] = study.step().create
    study.finish(job.name, succeeded(job, result(success=False, code="QUOTA_EXCEEDED"), at=at(1)))
    assert study.step(at(2)).status["state"] == "human_intervention_required"
    study.spec["interventionAck"] = "raised the quota"
    [again] = study.step(at(10)).create
    assert again.attempt == 2
    study.finish(again.name, succeeded(again, TIMEOUT, at=at(11)))
    study.step(at(11))  # attempt 2 is the first of its fresh budget of 2: it retries
    [third] = study.step(at(30)).create
    assert third.attempt == 3
    study.finish(third.name, succeeded(third, TIMEOUT, at=at(31)))
    decision = study.step(at(32))
    assert decision.status["state"] == "failed"  # out of its fresh budget, below threshold 1
