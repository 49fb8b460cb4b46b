"""`completionCriteria.minSuccessRate`: the AtRisk condition's `LowSuccessRate`, informational only."""

from __future__ import annotations

from core_builders import Study, at, failed, make_spec, result, succeeded

from bentham.core.checkpoint import CellRecord, CellState
from bentham.core.success_rate import MIN_FINISHED, success_rate_from
from bentham.core.tally import Tally


def test_the_rate_is_passed_attempts_over_finished_ones_in_flight_not_counted() -> None:
    records = [
        CellRecord(CellState.COMPLETED, 3),  # two failures, then a pass
        CellRecord(CellState.RUNNING, 2),  # one failure, one in flight
        CellRecord(CellState.FAILED, 3),
        CellRecord(CellState.PENDING, 0),
    ]
    rate = success_rate_from(Tally.of(records, slice_count=1))
    assert (rate.passed, rate.finished) == (1, 7)


def fail_round(study: Study, when: float, *, passing: int = 0) -> None:
    for number, job in enumerate(study.running_jobs()):
        if number < passing:
            study.finish(job.name, succeeded(job, result(), at=at(when)))
        else:
            study.finish(job.name, failed(job, result(success=False, code="TIMEOUT"), at=at(when)))


def test_below_the_rate_the_study_is_at_risk_once_announced_and_carries_on() -> None:
    study = Study(make_spec(queries=3, parallelism=12, max_retries=3))  # 12 cells
    study.step()
    fail_round(study, 10, passing=3)  # 3 of 12 passed: below 80%
    low = study.step(at(20))
    assert low.status["state"] == "executing" and len(low.create) == 9  # retries go on as before
    assert study.condition("AtRisk")["status"] == "True"
    assert study.condition("AtRisk")["reason"] == "LowSuccessRate"
    [event] = [e for e in low.events if e.reason == "LowSuccessRate"]
    assert event.type == "Warning" and event.message.startswith("3 of 12 finished attempts passed (25%)")
    fail_round(study, 30)
    again = study.step(at(40))
    assert [e for e in again.events if e.reason == "LowSuccessRate"] == []  # said once, not every pass
    assert study.condition("AtRisk")["reason"] == "LowSuccessRate"


def test_fewer_finished_attempts_than_the_minimum_say_nothing() -> None:
    study = Study(make_spec(queries=2, parallelism=MIN_FINISHED - 2))  # 8 cells, all failing once
    study.step()
    fail_round(study, 10)
    decision = study.step(at(20))
    assert [e for e in decision.events if e.reason == "LowSuccessRate"] == []
    assert all(c["type"] != "AtRisk" for c in decision.status["conditions"])


def test_a_rate_of_zero_never_warns_and_recovery_clears_the_condition() -> None:
    lenient = make_spec(queries=3, parallelism=12)
    lenient["manifest"]["completionCriteria"]["minSuccessRate"] = 0
    study = Study(lenient)
    study.step()
    fail_round(study, 10)
    assert all(c["type"] != "AtRisk" for c in study.step(at(20)).status["conditions"])

    strict = Study(make_spec(queries=3, parallelism=12))
    strict.step()
    fail_round(strict, 10, passing=3)
    strict.step(at(20))
    strict.spec["manifest"]["completionCriteria"]["minSuccessRate"] = 0.2  # a person lowers the bar
    recovered = strict.step(at(30))
    assert strict.condition("AtRisk")["status"] == "False"
    assert recovered.status["state"] == "executing"
