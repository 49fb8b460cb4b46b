"""Holding back a status that only moves counts (core.pacing, core.write_plan), and merging the summaries it held."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from core_builders import T0, Decided, Study, make_spec, result, running, succeeded
from test_decide_simulation import FakeKwok, check_final_counts

from bentham.api.status import StudyStatus
from bentham.core.cell_events import merge_cell_events
from bentham.core.decision import Decision, Notification, StudyEvent
from bentham.core.pacing import STALE_INTERVALS, hold_for, progress_step, write_at_once
from bentham.core.write_plan import plan_write


def typed(status: dict[str, Any] | None) -> StudyStatus | None:
    """A stored status as the worker keeps what it wrote."""
    return None if status is None else StudyStatus.model_validate(status)


def started(parallelism: int = 2) -> tuple[Study, Decided]:
    study = Study(make_spec(queries=2, parallelism=parallelism))
    first = study.step(T0)  # received ... executing, the first Jobs asked for
    return study, first


def test_a_status_that_only_moves_counts_may_wait() -> None:
    study, first = started()
    assert write_at_once(None, first.decision), "the first status (a new state) is written at once"
    job = next(iter(study.jobs.values()))
    study.finish(job.name, succeeded(job, result(), at=T0 + timedelta(seconds=5)))

    decision = study.decide(T0 + timedelta(seconds=6))

    assert [e.reason for e in decision.events] == ["CellsCompleted"]
    assert decision.status["progress"]["completedCells"] == 1
    assert not write_at_once(typed(study.status), decision.decision)


def test_a_failed_cell_is_written_at_once() -> None:
    study, _ = started()
    job = next(iter(study.jobs.values()))
    study.finish(job.name, succeeded(job, result(success=False, code="AUTH_FAILED"), at=T0))

    decision = study.decide(T0 + timedelta(seconds=1))

    assert "CellsFailed" in [e.reason for e in decision.events]
    assert write_at_once(typed(study.status), decision.decision)


def test_a_new_state_is_written_at_once_even_without_events() -> None:
    study, _ = started()
    paused = {**study.spec, "paused": True}
    status = StudyStatus.model_validate({**(study.status or {}), "state": "paused"})
    held = Decision(status=status, create=[], delete=[], events=[], requeue_after=None)

    assert write_at_once(typed(study.status), held)
    study.spec = paused
    assert write_at_once(typed(study.status), study.decide(T0 + timedelta(seconds=1)).decision)


def test_a_notification_is_written_at_once() -> None:
    study, _ = started()
    decision = Decision(
        status=StudyStatus.model_validate(study.status or {}),
        create=[],
        delete=[],
        events=[],
        requeue_after=None,
        notifications=[Notification("study.at_risk", "x", {})],
    )

    assert write_at_once(typed(study.status), decision)


def counts_only(completed: int, total: int) -> tuple[StudyStatus, Decision]:
    """A status written with no outcome yet, and a decision that only adds `completed` outcomes to it."""
    progress: dict[str, Any] = {"totalCells": total, "completedCells": 0, "failedCells": 0}
    written = StudyStatus.model_validate({"state": "executing", "progress": progress})
    status = StudyStatus.model_validate({"state": "executing", "progress": {**progress, "completedCells": completed}})
    return written, Decision(status=status, create=[], delete=[], events=[], requeue_after=None)


@pytest.mark.parametrize(("total", "step"), [(1, 1), (24, 1), (50, 2), (120, 4), (500, 20), (10_000, 20)])
def test_the_progress_step_is_4_percent_of_the_cells_between_1_and_20(total: int, step: int) -> None:
    assert progress_step(StudyStatus.model_validate({"progress": {"totalCells": total}})) == step


def test_a_step_of_outcomes_is_written_once_the_interval_is_over() -> None:
    written, decision = counts_only(completed=20, total=500)

    assert hold_for(written, decision, since_write_s=2.0, interval_s=5.0) == pytest.approx(3.0)
    assert hold_for(written, decision, since_write_s=5.0, interval_s=5.0) == 0


def test_fewer_outcomes_than_a_step_wait_for_more_or_for_the_stale_limit() -> None:
    written, decision = counts_only(completed=19, total=500)

    assert hold_for(written, decision, since_write_s=10.0, interval_s=5.0) == pytest.approx(STALE_INTERVALS * 5 - 10)
    assert hold_for(written, decision, since_write_s=STALE_INTERVALS * 5.0, interval_s=5.0) == 0


def test_a_small_study_writes_each_outcome_once_the_interval_is_over() -> None:
    written, decision = counts_only(completed=1, total=8)

    assert hold_for(written, decision, since_write_s=5.0, interval_s=5.0) == 0


def test_what_must_be_written_at_once_is_never_held() -> None:
    _, first = started()

    assert hold_for(None, first.decision, since_write_s=0.0, interval_s=5.0) == 0


def summary(count: int, *cells: str) -> StudyEvent:
    named = ", ".join(cells)
    return StudyEvent("Normal", "CellsCompleted", f"{count} cells completed: {named}", cells=cells, cell_count=count)


def test_held_summaries_merge_into_one_event_per_kind_in_first_place() -> None:
    started_event = StudyEvent("Normal", "Executing", "Executing")
    first = summary(2, "a", "b")
    second = summary(11, *[f"c{i}" for i in range(11)])

    merged = merge_cell_events([started_event, first, second])

    assert merged[0] == started_event
    assert len(merged) == 2
    assert merged[1].cell_count == 13
    assert merged[1].cells == ("a", "b", "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7")
    assert merged[1].message == "13 cells completed: a, b, c0, c1, c2, c3, c4, c5, c6, c7 and 3 more"


def test_merging_leaves_other_events_and_a_single_summary_as_they_are() -> None:
    events = [StudyEvent("Warning", "SpecWarnings", "w"), summary(1, "a"), StudyEvent("Normal", "Complete", "done")]

    assert merge_cell_events(events) == events


@dataclass
class PacedShell:
    """The worker's clock and counters, played against the fake cluster; the study keeps what it holds."""

    interval: float
    written_at: float = float("-inf")
    writes: int = 0
    restarts: int = 0


def paced_step(study: Study, kwok: FakeKwok, shell: PacedShell, now: float, rng: random.Random) -> None:
    """One worker pass with the real write plan: hold or write, delete, create; or a restart that forgets."""
    decided = study.decide(T0 + timedelta(seconds=now))
    if rng.random() < 0.05:  # the operator restarts before applying: whatever it held is gone
        study.held = None
        shell.restarts += 1
        return
    plan = plan_write(
        study.stored, study.held, decided.decision, since_last_write=now - shell.written_at, interval=shell.interval
    )
    if plan.held is not None:
        assert all(e.reason == "CellsCompleted" for e in decided.events) and not decided.notifications
        assert plan.delete == [] and plan.events == []
    if plan.write is not None:
        study.status, shell.written_at = plan.write.as_stored(), now
        shell.writes += 1
    study.held = plan.held
    for name in plan.delete:
        study.jobs.pop(name, None)
    for job in plan.create:
        kwok.create(study, job, now)


@pytest.mark.parametrize(("seed", "queries"), [*((seed, 6) for seed in range(10)), *((seed, 30) for seed in range(3))])
def test_held_statuses_lose_nothing_and_start_nothing_twice_across_restarts(seed: int, queries: int) -> None:
    """24 cells hold for the interval; 120 also for a step of 4 outcomes."""
    spec = make_spec(
        queries=queries,
        surfaces=("openai-api", "grok"),
        locations=("us-nyc", "uk-lon"),
        threshold=0.5,
        parallelism=4,
        min_length=100,
    )
    study = Study(spec)
    kwok = FakeKwok(seed, [85, 5, 5, 3, 0, 2])  # FakeKwok.create fails on any attempt started twice
    shell = PacedShell(interval=5.0)
    rng = random.Random(seed)
    now = 0.0
    for _ in range(10_000):
        kwok.tick(study, now)
        paced_step(study, kwok, shell, now, rng)
        assert sum(j.phase == "running" for j in study.jobs.values()) <= 4, "more than parallelism in flight"
        if study.state in ("complete", "failed") and not study.jobs:
            break
        now += rng.uniform(0.2, 1.0)
    else:
        pytest.fail(f"seed {seed}: the study never ended")
    assert study.state == "complete"
    check_final_counts(study, kwok)
    assert shell.restarts > 0
    assert shell.writes < len(kwok.created), "holding wrote less often than once per started attempt"


def test_a_held_status_lost_in_a_restart_is_rebuilt_from_the_jobs_it_kept() -> None:
    study, _ = started(parallelism=2)
    a, b = sorted(study.jobs)
    study.finish(a, succeeded(study.jobs[a], result(), at=T0 + timedelta(seconds=2)))
    held = study.decide(T0 + timedelta(seconds=3))
    assert not write_at_once(typed(study.status), held.decision)
    (replacement,) = held.create
    study.jobs[replacement.name] = running(replacement)  # started while the status was held

    # The operator restarts: the held status is gone; the finished Job was not deleted.
    again = study.decide(T0 + timedelta(seconds=4))

    assert again.status["progress"]["completedCells"] == 1
    assert again.status["checkpoint"]["inFlight"] == sorted([b, replacement.name])
    assert again.create == [] and again.delete == [a]
