"""A running study whose spec stops reading is held, never failed, and carries on once it reads again."""

from __future__ import annotations

import copy

from core_builders import Study, at, make_spec, result, succeeded


def test_running_study_whose_spec_turns_invalid_is_held_with_its_jobs_and_counts() -> None:
    study = Study(make_spec(parallelism=2))
    started = study.step()
    assert study.state == "executing" and len(started.create) == 2
    study.spec = copy.deepcopy(study.spec)
    study.spec["policyFromANewerCrd"] = {"x": 1}  # what an older operator sees during an upgrade
    for job in started.create:
        study.finish(job.name, succeeded(job, result()))

    held = study.step(at(5))

    assert study.state == "executing"
    assert held.create == [] and held.delete == []
    assert study.condition("SpecValid")["status"] == "False"
    assert "policyFromANewerCrd" in study.condition("SpecValid")["message"]
    assert study.status is not None and study.status["progress"]["completedCells"] == 0  # nothing judged
    assert [e.reason for e in held.events] == ["SpecInvalid"]


def test_held_study_announces_the_hold_once() -> None:
    study = Study(make_spec(parallelism=2))
    study.step()
    study.spec = {**study.spec, "unknownField": True}
    study.step(at(1))

    again = study.step(at(2))

    assert again.events == []


def test_held_study_carries_on_from_its_checkpoint_once_the_spec_reads_again() -> None:
    valid = make_spec(parallelism=2)
    study = Study(valid)
    started = study.step()
    study.spec = {**valid, "unknownField": True}
    study.step(at(1))
    for job in started.create:
        study.finish(job.name, succeeded(job, result()))

    study.spec = valid
    resumed = study.step(at(2))

    assert study.condition("SpecValid")["status"] == "True"
    assert "SpecValid" in [e.reason for e in resumed.events]
    assert study.status is not None and study.status["progress"]["completedCells"] == 2
    assert len(resumed.create) == 2  # the next cells start


def test_invalid_spec_before_validation_still_fails_the_study() -> None:
    study = Study({**make_spec(), "unknownField": True})

    study.step()

    assert study.state == "failed"
    assert study.condition("Failed")["reason"] == "InvalidSpec"
