"""Cells as `decide()` runs them: idempotence, crash recovery, retries, gates, completion, failure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from core_builders import Decided, Study, at, failed, make_spec, result, running, succeeded

from bentham.core.checkpoint import CellRecord, CellState, read_records
from bentham.core.decision import ObservedJob


def records_of(decision: Decided) -> list[CellRecord]:
    records = read_records(decision.decision.status.checkpoint)
    assert records is not None
    return records


def test_same_input_twice_gives_the_same_decision() -> None:
    study = Study(make_spec(queries=3, parallelism=4))
    study.step()
    job = next(iter(study.jobs.values()))
    study.finish(job.name, failed(job, reason="DeadlineExceeded", at=at(1)))
    assert study.decide(at(2)) == study.decide(at(2))


def test_own_output_fed_back_starts_no_new_attempt() -> None:
    study = Study(make_spec(queries=3, parallelism=4))
    first = study.decide()
    study.status = first.status
    again = study.decide()  # the Jobs are not visible yet: ask for the same ones, by the same names
    assert {(j.name, j.cell.index, j.attempt) for j in again.create} == {
        (j.name, j.cell.index, j.attempt) for j in first.create
    }
    assert again.status == first.status and again.events == []


def test_a_reconcile_that_changes_nothing_writes_the_same_status() -> None:
    study = Study(make_spec(queries=3, parallelism=4))
    first = study.step()
    later = study.step(at(30))
    assert later.status == first.status and later.create == [] and later.delete == [] and later.events == []


def test_job_created_before_a_crash_is_adopted_not_duplicated() -> None:
    study = Study(make_spec(queries=3, parallelism=4))
    lost = study.decide()  # Jobs created, then the operator crashed before writing the status.
    study.jobs = {j.name: running(j) for j in lost.create}
    decision = study.step(at(1))
    assert decision.create == []
    assert decision.status["progress"]["executingCells"] == 4
    assert sorted(decision.status["checkpoint"]["inFlight"]) == sorted(j.name for j in lost.create)


def test_retry_job_created_before_a_crash_is_adopted_as_the_newer_attempt() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",)))
    [job] = study.step().create
    study.finish(job.name, failed(job, reason="DeadlineExceeded", at=at(1)))
    study.step(at(1))
    lost = study.decide(at(5))
    [retry] = lost.create
    assert retry.attempt == 2
    study.jobs[retry.name] = running(retry)  # created; the status write was lost
    decision = study.step(at(6))
    assert decision.create == []
    assert records_of(decision)[0] == CellRecord(CellState.RUNNING, 2)


def test_missing_job_of_a_running_cell_is_recreated_with_the_same_name() -> None:
    study = Study(make_spec(queries=2, parallelism=3))
    first = study.step()
    gone = first.create[1]
    del study.jobs[gone.name]
    decision = study.step(at(1))
    assert [(j.name, j.attempt) for j in decision.create] == [(gone.name, 1)]
    assert records_of(decision)[gone.cell.index] == CellRecord(CellState.RUNNING, 1)


def test_finished_job_whose_outcome_is_recorded_is_only_deleted() -> None:
    study = Study(make_spec(queries=2, parallelism=3))
    job = study.step().create[0]
    finished = succeeded(job, at=at(1))
    study.finish(job.name, finished)
    recorded = study.decide(at(2))
    study.jobs.update({j.name: running(j) for j in recorded.create})
    study.status = recorded.status  # status written, the delete never happened
    decision = study.decide(at(3))
    assert decision.delete == [job.name] and decision.events == []
    assert decision.status == recorded.status and decision.create == []


def test_retry_waits_its_backoff_then_succeeds_and_records_the_attempts() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc", "uk-lon")))
    first, other = study.step().create
    study.finish(first.name, failed(first, result(success=False, code="TIMEOUT"), at=at(10)))
    waiting = study.step(at(10))
    assert [e.reason for e in waiting.events] == ["CellsRetrying"]
    assert waiting.create == [] and waiting.delete == [first.name]
    record = records_of(waiting)[first.cell.index]
    assert record.state is CellState.RETRY_WAIT and record.attempts == 1
    assert record.retry_at is not None and at(10.8) <= record.retry_at <= at(11)
    assert waiting.requeue_after is not None and 0.8 <= waiting.requeue_after <= 1.0
    assert waiting.status["progress"]["pendingCells"] == 1
    assert study.step(at(10.5)).create == []
    [retry] = study.step(at(11)).create
    assert (retry.cell.index, retry.attempt) == (first.cell.index, 2) and retry.name.endswith("-a2")
    study.finish(retry.name, succeeded(retry, at=at(12)))
    study.finish(other.name, succeeded(other, at=at(12)))
    done = study.step(at(13))
    assert done.status["state"] == "complete"
    assert records_of(done)[first.cell.index] == CellRecord(CellState.COMPLETED, 2)


def test_non_retryable_error_is_not_retried() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc", "uk-lon"), threshold=0.5))
    first, _ = study.step().create
    study.finish(first.name, succeeded(first, result(success=False, code="INVALID_REQUEST"), at=at(1)))
    decision = study.step(at(2))
    assert records_of(decision)[first.cell.index] == CellRecord(CellState.FAILED, 1)
    assert [e.reason for e in decision.events] == ["CellsFailed"]
    assert study.step(at(120)).create == []


def test_cell_out_of_attempts_fails_for_good() -> None:
    study = Study(
        make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc", "uk-lon"), max_retries=2, threshold=0.5)
    )
    job, _ = study.step().create
    study.finish(job.name, failed(job, reason="DeadlineExceeded", at=at(1)))
    study.step(at(1))
    [retry] = study.step(at(5)).create
    study.finish(retry.name, failed(retry, reason="DeadlineExceeded", at=at(6)))
    decision = study.step(at(6))
    assert records_of(decision)[job.cell.index] == CellRecord(CellState.FAILED, 2)
    assert decision.status["progress"]["failedCells"] == 1


def test_too_short_response_fails_by_the_quality_gate() -> None:
    study = Study(
        make_spec(
            queries=1,
            surfaces=("openai-api",),
            locations=("us-nyc", "uk-lon"),
            min_length=500,
            max_retries=1,
            threshold=0.5,
        )
    )
    job, _ = study.step().create
    study.finish(job.name, succeeded(job, result(length=120), at=at(1)))
    decision = study.step(at(2))
    assert records_of(decision)[job.cell.index].state is CellState.FAILED
    [event] = decision.events
    assert event.reason == "CellsFailed" and "ResponseTooShort" in event.message


def test_optional_surface_all_failing_still_completes() -> None:
    study = Study(
        make_spec(
            queries=2,
            surfaces=("openai-api", "grok"),
            locations=("us-nyc",),
            optional=("grok",),
            threshold=1.0,
            parallelism=10,
        )
    )
    for job in study.step().create:
        outcome = result() if job.cell.surface.value == "openai-api" else result(success=False, code="AUTH_FAILED")
        study.finish(job.name, succeeded(job, outcome, at=at(1)))
    decision = study.step(at(2))
    assert decision.status["state"] == "complete"
    assert decision.status["progress"]["bySurface"]["grok"]["failed"] == 2
    assert decision.status["progress"]["bySurface"]["grok"]["required"] is False


def optional_study(parallelism: int = 4) -> Study:
    """2 queries x 3 surfaces x 2 locations; grok is optional (in neither list it would be too)."""
    return Study(
        make_spec(
            queries=2,
            surfaces=("openai-api", "anthropic-api", "grok"),
            locations=("us-nyc", "uk-lon"),
            optional=("grok",),
            parallelism=parallelism,
            max_retries=2,
        )
    )


def run_to_the_end(study: Study, outcome: Callable[[ObservedJob], str]) -> list[tuple[int, int]]:
    """Steps the study, finishing every Job as `outcome` says, until it ends; returns each (cell, attempt) made."""
    made: list[tuple[int, int]] = []
    for tick in range(1, 200):
        decision = study.step(at(tick * 100))
        made += [(job.cell.index, job.attempt) for job in decision.create]
        if decision.status["state"] in ("complete", "failed"):
            return made
        for job in study.running_jobs():
            study.finish(job.name, succeeded(job, outcome(job), at=at(tick * 100 + 1)))
    raise AssertionError("the study never ended")


def test_optional_cells_start_as_soon_as_no_required_cell_waits_and_every_cell_runs() -> None:
    study = optional_study()
    first = study.step().create
    assert {job.cell.surface.value for job in first} == {"openai-api", "anthropic-api"}
    for job in first:
        study.finish(job.name, succeeded(job, at=at(1)))
    second = study.step(at(2)).create
    # The last 4 required cells, then the slack of the pass after goes to grok.
    assert {job.cell.surface.value for job in second} == {"openai-api", "anthropic-api"}
    made = [(job.cell.index, job.attempt) for job in first + second] + run_to_the_end(study, lambda job: result())
    assert sorted(made) == [(cell, 1) for cell in range(12)]
    assert study.state == "complete"
    progress = study.status["progress"] if study.status else {}
    assert progress["completedCells"] == 12 and progress["bySurface"]["grok"]["completed"] == 4


def test_optional_cells_failing_get_every_attempt_and_never_fail_the_study() -> None:
    study = optional_study()

    def outcome(job: ObservedJob) -> str:
        return result(success=False, code="TIMEOUT") if job.cell_index % 6 >= 4 else result()

    made = run_to_the_end(study, outcome)
    grok = sorted((cell, attempt) for cell, attempt in made if cell % 6 >= 4)
    assert grok == [(cell, attempt) for cell in (4, 5, 10, 11) for attempt in (1, 2)]
    assert study.state == "complete"
    progress = study.status["progress"] if study.status else {}
    assert progress["completedCells"] == 8 and progress["failedCells"] == 4
    assert progress["bySurface"]["grok"] == {
        "total": 4, "completed": 0, "failed": 4, "blocked": 0, "executing": 0, "pending": 0, "skipped": 0,
        "required": False,
    }  # fmt: skip


def test_required_surface_failing_fails_the_study_early_and_deletes_live_jobs() -> None:
    study = Study(
        make_spec(
            queries=10,
            surfaces=("openai-api", "grok"),
            locations=("us-nyc",),
            threshold=0.9,
            parallelism=4,
            max_retries=1,
        )
    )
    jobs = study.step().create
    broken = [j for j in jobs if j.cell.surface.value == "grok"]
    assert len(broken) == 2
    study.finish(broken[0].name, succeeded(broken[0], result(success=False, code="INVALID_REQUEST"), at=at(1)))
    still = study.step(at(1))  # 1 of 10 failed: 9/10 can still make 0.9
    assert still.status["state"] == "executing"
    study.finish(broken[1].name, succeeded(broken[1], result(success=False, code="INVALID_REQUEST"), at=at(2)))
    live = sorted(j.name for j in study.jobs.values())
    decision = study.step(at(3))
    assert decision.status["state"] == "failed"
    assert study.condition("Failed")["reason"] == "RequiredSurfaceUnreachable"
    assert "grok" in decision.status["message"] and "2 of 10" in decision.status["message"]
    assert decision.create == [] and decision.delete == live
    assert decision.status["progress"]["executingCells"] == 0
    assert decision.status["progress"]["completedCells"] + decision.status["progress"]["failedCells"] < 20


def test_fail_early_uses_the_same_threshold_arithmetic_as_completion() -> None:
    # 1 - 0.9 in floating point is just below 0.1: one failure of ten must not fail the study.
    study = Study(
        make_spec(
            queries=10,
            surfaces=("openai-api",),
            locations=("us-nyc",),
            threshold=0.9,
            parallelism=10,
            max_retries=1,
        )
    )
    jobs = study.step().create
    for i, job in enumerate(jobs):
        outcome = result(success=False, code="AUTH_FAILED") if i == 0 else result()
        study.finish(job.name, succeeded(job, outcome, at=at(1)))
    assert study.step(at(2)).status["state"] == "complete"


def test_never_more_than_parallelism_in_flight_with_retries_due() -> None:
    study = Study(make_spec(queries=5, parallelism=3))
    for job in study.step().create:
        study.finish(job.name, failed(job, reason="DeadlineExceeded", at=at(1)))
    refill = study.step(at(1))
    assert len(refill.create) == 3 and all(j.attempt == 1 for j in refill.create)
    due = study.step(at(100))
    assert due.create == [] and len(study.running_jobs()) == 3
    for observed in study.running_jobs():
        study.finish(observed.name, succeeded(observed, at=at(101)))
    retries = study.step(at(101))
    assert len(retries.create) == 3 and all(j.attempt == 2 for j in retries.create)  # due retries go first


def test_requeue_is_asked_only_for_a_future_retry() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",)))
    [job] = study.step().create
    study.finish(job.name, failed(job, reason="DeadlineExceeded", at=at(0)))
    waiting = study.step(at(0.1))
    assert waiting.requeue_after is not None
    assert at(0.1) + timedelta(seconds=waiting.requeue_after) == records_of(waiting)[0].retry_at
    started = study.step(at(5))
    assert started.requeue_after is None and len(started.create) == 1


def test_jobs_of_cells_outside_the_study_are_deleted() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",)))
    [job] = study.step().create
    stray = running(job).__class__("stray", 999, 1, "running", None, None, None)
    decision = study.decide(at(1), jobs=[running(job), stray])
    assert decision.delete == ["stray"]
