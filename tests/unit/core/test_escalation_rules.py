"""At-risk announcements by stage, and the parallelism boost's steps."""

from __future__ import annotations

from datetime import timedelta

from core_builders import T0

from bentham.api.spec import Executor
from bentham.core.escalation import escalate, escalation_stage, next_parallelism, parallelism_step

NOW = "2030-01-01T12:00:00Z"
EARLIER = "2030-01-01T11:00:00Z"


def test_stages_are_half_and_three_quarters_of_the_time_used() -> None:
    assert [escalation_stage(x) for x in (0.0, 0.49, 0.5, 0.74, 0.75, 1.5)] == [0, 0, 1, 1, 2, 2]


def test_becoming_at_risk_is_announced_once_at_the_stage_it_is_in() -> None:
    first = escalate(at_risk=True, stage=1, previous_since=None, previous_stage=None, now=NOW)
    assert (first.since, first.stage, first.announce, first.cleared) == (NOW, 1, True, False)
    again = escalate(at_risk=True, stage=1, previous_since=first.since, previous_stage=first.stage, now=NOW)
    assert (again.since, again.stage, again.announce) == (NOW, 1, False)


def test_crossing_a_stage_while_at_risk_is_announced_again_keeping_the_stretch() -> None:
    later = escalate(at_risk=True, stage=2, previous_since=EARLIER, previous_stage=0, now=NOW)
    assert (later.since, later.stage, later.announce) == (EARLIER, 2, True)


def test_recovering_clears_the_stretch_so_the_next_one_is_announced_anew() -> None:
    cleared = escalate(at_risk=False, stage=2, previous_since=EARLIER, previous_stage=2, now=NOW)
    assert (cleared.since, cleared.stage, cleared.announce, cleared.cleared) == (None, None, False, True)
    anew = escalate(at_risk=True, stage=2, previous_since=None, previous_stage=None, now=NOW)
    assert anew.announce and anew.since == NOW


def test_never_at_risk_announces_and_clears_nothing() -> None:
    quiet = escalate(at_risk=False, stage=0, previous_since=None, previous_stage=None, now=NOW)
    assert not quiet.announce and not quiet.cleared


EXECUTOR = Executor(image="x", parallelism=10, maxParallelism=22)


def step(current: int, *, at_risk: bool = True, changed: float | None = None, **kwargs: bool) -> int:
    options = {"may_start": True, "cells_waiting": True} | kwargs
    changed_at = None if changed is None else T0 - timedelta(seconds=changed)
    return next_parallelism(EXECUTOR, current, at_risk=at_risk, changed_at=changed_at, now=T0, **options)


def test_at_risk_raises_parallelism_by_half_the_spec_value_up_to_max() -> None:
    assert parallelism_step(EXECUTOR) == 5
    assert step(10) == 15
    assert step(15, changed=60) == 20
    assert step(20, changed=60) == 22
    assert step(22, changed=3600) == 22


def test_parallelism_rises_at_most_once_a_minute() -> None:
    assert step(15, changed=59) == 15


def test_parallelism_is_not_raised_when_nothing_can_start_or_nothing_waits() -> None:
    assert step(10, may_start=False) == 10
    assert step(10, cells_waiting=False) == 10


def test_without_max_parallelism_it_is_never_raised() -> None:
    plain = Executor(image="x", parallelism=4)
    assert next_parallelism(plain, 4, at_risk=True, may_start=True, cells_waiting=True, changed_at=None, now=T0) == 4


def test_no_longer_at_risk_lowers_it_back_to_the_spec_value_at_once() -> None:
    assert step(22, at_risk=False, changed=1) == 10
    assert step(10, at_risk=False) == 10


def test_a_parallelism_of_one_steps_by_one() -> None:
    one = Executor(image="x", parallelism=1, maxParallelism=3)
    assert next_parallelism(one, 1, at_risk=True, may_start=True, cells_waiting=True, changed_at=None, now=T0) == 2
