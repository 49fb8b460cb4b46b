"""The write plan: which status is fresher, on which version it is written, what is held and what it releases."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from core_builders import T0, Study, make_spec, result, succeeded

from bentham.api.status import StudyStatus
from bentham.core.decision import Decision, StudyEvent
from bentham.core.write_plan import (
    RESYNC_SECONDS,
    Held,
    StudyVersion,
    checkpoint_sequence,
    plan_write,
    status_to_decide_from,
    stored_status,
)


def with_sequence(sequence: int, state: str = "executing") -> dict[str, Any]:
    return {"state": state, "checkpoint": {"sequence": sequence, "cells": "x"}}


def test_our_write_wins_over_a_watch_that_lags_behind_it() -> None:
    written = StudyVersion(StudyStatus.model_validate(with_sequence(5)), "105")

    assert stored_status(StudyVersion(with_sequence(4), "104"), written) is written
    assert stored_status(StudyVersion(with_sequence(5, "paused"), "103"), written) is written, "a tie: ours"


def test_a_newer_status_from_the_watch_wins_over_our_last_write() -> None:
    observed = StudyVersion(with_sequence(6), "110")

    assert stored_status(observed, StudyVersion(StudyStatus.model_validate(with_sequence(5)), "105")) is observed
    assert stored_status(observed, None) is observed


def test_the_watch_carrying_our_status_after_a_spec_change_gives_the_newer_version() -> None:
    ours = StudyStatus.model_validate(with_sequence(5))
    written = StudyVersion(ours, "105")

    assert stored_status(StudyVersion(ours.as_stored(), "105"), written).resource_version == "105"
    assert stored_status(StudyVersion(ours.as_stored(), "107"), written).resource_version == "107", "spec changed"


def test_a_held_status_is_decided_from_only_while_the_study_is_the_version_it_was_decided_from() -> None:
    held = Held(StudyStatus.model_validate(with_sequence(7)), base="120")

    assert status_to_decide_from(StudyVersion(with_sequence(6), "120"), held) is held.status
    assert status_to_decide_from(StudyVersion(with_sequence(6), "121"), held) == with_sequence(6), (
        "written since (another replica, or a spec change): the held status is not decided from"
    )
    assert status_to_decide_from(StudyVersion(with_sequence(8), "125"), held) == with_sequence(8)
    assert status_to_decide_from(StudyVersion(with_sequence(6), "120"), None) == with_sequence(6)


def test_a_held_status_remembers_the_version_it_was_decided_from() -> None:
    study, decision = started_with_one_outcome()

    plan = plan_write(StudyVersion(study.status, "42"), None, decision, since_last_write=1.0, interval=5.0)

    assert plan.held is not None and plan.held.base == "42"


def test_a_dropped_held_status_releases_none_of_its_events() -> None:
    """Its outcomes' Jobs still exist: deciding again from the stored status announces them again, once."""
    study, decision = started_with_one_outcome()
    held = plan_write(StudyVersion(study.status, "42"), None, decision, since_last_write=1.0, interval=5.0).held
    assert held is not None and held.events

    plan = plan_write(StudyVersion(study.status, "43"), held, decision, since_last_write=math.inf, interval=5.0)

    assert plan.write == decision.status
    assert plan.events == list(decision.events), "only this decision's events, not the dropped held ones too"


def test_a_checkpoint_sequence_reads_from_raw_and_typed_statuses_alike() -> None:
    assert checkpoint_sequence(None) == -1
    assert checkpoint_sequence({"checkpoint": {"sequence": "3"}}) == -1, "not a number: no sequence"
    assert checkpoint_sequence(with_sequence(3)) == checkpoint_sequence(StudyStatus.model_validate(with_sequence(3)))


def started_with_one_outcome() -> tuple[Study, Decision]:
    """A 24-cell study written once, then a decision that only records one completed cell."""
    study = Study(make_spec(queries=6, parallelism=2))
    study.step(T0)
    job = next(iter(study.jobs.values()))
    study.finish(job.name, succeeded(job, result(), at=T0 + timedelta(seconds=1)))
    return study, study.decide(T0 + timedelta(seconds=2)).decision


def test_a_held_status_deletes_nothing_announces_nothing_and_still_starts_jobs() -> None:
    study, decision = started_with_one_outcome()

    plan = plan_write(study.stored, None, decision, since_last_write=1.0, interval=5.0)

    assert plan.write is None and plan.held is not None
    assert plan.held.status == decision.status
    assert [e.reason for e in plan.held.events] == ["CellsCompleted"]
    assert plan.delete == [] and plan.events == [] and plan.notifications == []
    assert plan.create == decision.create and plan.create, "the freed slot is refilled at once"
    assert plan.requeue_after == pytest.approx(5.0 - 1.0), "one outcome is a step of 24 cells: held for the interval"


def test_the_write_that_releases_a_held_status_posts_its_events_merged() -> None:
    study, decision = started_with_one_outcome()
    first = plan_write(study.stored, None, decision, since_last_write=1.0, interval=5.0)
    study.held = first.held
    for job in first.create:
        study.jobs[job.name] = succeeded(job, result(), at=T0 + timedelta(seconds=3))
    later = study.decide(T0 + timedelta(seconds=4)).decision

    plan = plan_write(study.stored, study.held, later, since_last_write=math.inf, interval=5.0)

    assert plan.write == later.status and plan.held is None
    [summary] = [e for e in plan.events if e.reason == "CellsCompleted"]
    assert summary.cell_count == 1 + sum(e.cell_count for e in later.events if e.reason == "CellsCompleted")
    assert later.status.progress is not None
    assert plan.newly_completed == later.status.progress.completedCells, "the stored status had none"


def test_an_unchanged_status_is_not_written_but_its_jobs_and_events_still_go() -> None:
    study = Study(make_spec(queries=1))
    study.step(T0)
    decision = study.decide(T0 + timedelta(seconds=1)).decision
    event = StudyEvent("Normal", "Something", "x")
    same = Decision(decision.status, decision.create, ["old-job"], [event], requeue_after=None)

    plan = plan_write(StudyVersion(decision.status.as_stored()), None, same, since_last_write=0.0, interval=5.0)

    assert plan.write is None and plan.held is None
    assert plan.delete == ["old-job"] and plan.events == [event]
    assert plan.newly_completed == 0


def test_a_study_that_has_not_ended_is_looked_at_again_within_the_resync() -> None:
    study = Study(make_spec(queries=1))
    decision = study.decide(T0).decision

    plan = plan_write(StudyVersion(None), None, decision, since_last_write=math.inf, interval=5.0)

    assert plan.requeue_after == RESYNC_SECONDS


def test_an_ended_study_is_only_looked_at_when_woken() -> None:
    study = Study(make_spec(queries=1, cancel="done"))
    study.step(T0)
    decision = study.decide(T0 + timedelta(seconds=1)).decision
    assert decision.status.state == "cancelled"

    plan = plan_write(study.stored, None, decision, since_last_write=math.inf, interval=5.0)

    assert plan.requeue_after is None
