"""The deadline arithmetic: cells needed, rates over running time, projection, and the at-risk rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from core_builders import T0, manifest

from bentham.api.status import CellCounts, Progress, StudyState, StudyStatus
from bentham.core.checkpoint import CellRecord, CellState, fresh_records
from bentham.core.deadlines import (
    BEHIND_SCHEDULE,
    DEADLINE_PASSED,
    NO_PROGRESS,
    ON_SCHEDULE,
    THRESHOLDS_MET,
    DeadlineFigures,
    assess_risk,
    cells_needed_for,
    deadline_figures,
)
from bentham.core.progress import progress_of
from bentham.core.running_time import RunningTime, is_running, running_time_of

HOUR = 3600.0
DONE = CellRecord(CellState.COMPLETED, 1)


def progress(**surfaces: tuple[int, int, bool]) -> Progress:
    """Progress with (completed, total, required) per surface."""
    return Progress(
        bySurface={
            name.replace("_", "-"): CellCounts(total=total, completed=done, pending=total - done, required=required)
            for name, (done, total, required) in surfaces.items()
        }
    )


def figures(
    *, completed: int, needed_total: int = 100, hours_left: float, running_hours: float, window_hours: float = 100
) -> DeadlineFigures:
    deadline = T0 + timedelta(hours=window_hours)
    now = deadline - timedelta(hours=hours_left)
    return deadline_figures(
        deadline=deadline,
        created_at=T0,
        progress=progress(openai_api=(completed, needed_total, True)),
        threshold=1.0,
        running_seconds=running_hours * HOUR,
        now=now,
    )


@pytest.mark.parametrize(
    ("completed", "total", "threshold", "needed"),
    [
        (0, 10, 0.95, 10),
        (9, 10, 0.95, 1),
        (10, 10, 0.95, 0),
        (0, 20, 0.95, 19),
        (0, 3, 0.7, 3),
        (5, 10, 0.5, 0),
        (0, 10, 0.0, 0),
        (0, 100, 0.29, 29),
        (3, 7, 1.0, 4),
    ],
)
def test_cells_needed_is_the_fewest_completions_that_reach_the_threshold(
    completed: int, total: int, threshold: float, needed: int
) -> None:
    assert cells_needed_for(completed, total, threshold) == needed


def test_rates_are_cells_per_hour_of_time_left_and_of_running_time() -> None:
    f = figures(completed=20, hours_left=10, running_hours=4)
    assert f.cells_needed == 80
    assert f.required_rate == pytest.approx(8.0)
    assert f.current_rate == pytest.approx(5.0)
    assert f.projected_completion == T0 + timedelta(hours=90 + 16)
    assert f.time_used == pytest.approx(0.9)


def test_zero_progress_has_a_current_rate_of_zero_and_no_projection() -> None:
    f = figures(completed=0, hours_left=50, running_hours=2)
    assert f.current_rate == 0.0 and f.projected_completion is None


def test_a_study_that_never_ran_has_no_current_rate() -> None:
    assert figures(completed=0, hours_left=50, running_hours=0).current_rate is None


def test_optional_surfaces_never_count_towards_cells_needed_or_the_rate() -> None:
    f = deadline_figures(
        deadline=T0 + timedelta(hours=10),
        created_at=T0,
        progress=progress(openai_api=(5, 10, True), grok=(10, 10, False)),
        threshold=1.0,
        running_seconds=HOUR,
        now=T0 + timedelta(hours=5),
    )
    assert (f.cells_needed, f.completed_required, f.current_rate) == (5, 5, 5.0)


def test_bottleneck_is_the_required_surface_furthest_below_its_threshold() -> None:
    f = deadline_figures(
        deadline=T0 + timedelta(hours=10),
        created_at=T0,
        progress=progress(openai_api=(8, 10, True), grok=(1, 10, True), meta_ai=(0, 10, False)),
        threshold=0.9,
        running_seconds=HOUR,
        now=T0,
    )
    assert f.bottleneck == "grok" and f.cells_needed == 1 + 8


def test_past_the_deadline_nothing_needed_has_rate_zero_and_something_needed_has_none() -> None:
    late = T0 + timedelta(hours=11)
    common = {"deadline": T0 + timedelta(hours=10), "created_at": T0, "threshold": 1.0, "running_seconds": HOUR}
    short = deadline_figures(progress=progress(openai_api=(5, 10, True)), now=late, **common)  # type: ignore[arg-type]
    done = deadline_figures(progress=progress(openai_api=(10, 10, True)), now=late, **common)  # type: ignore[arg-type]
    assert short.time_remaining == 0 and short.required_rate is None and short.time_used == pytest.approx(1.1)
    assert done.required_rate == 0.0 and done.bottleneck is None


def risk(f: DeadlineFigures, *, was: bool = False, margin: float = 0.8, fraction: float = 0.25) -> tuple[bool, str]:
    verdict = assess_risk(f, was_at_risk=was, margin=margin, no_progress_fraction=fraction)
    return verdict.at_risk, verdict.reason


def test_behind_schedule_below_the_margin_times_the_required_rate() -> None:
    # required 8/h: at risk below 6.4/h when entering.
    assert risk(figures(completed=20, hours_left=10, running_hours=4)) == (True, BEHIND_SCHEDULE)  # 5/h
    assert risk(figures(completed=28, hours_left=9, running_hours=4)) == (False, ON_SCHEDULE)  # 7/h vs 8/h


def test_once_at_risk_a_study_recovers_only_at_the_full_required_rate() -> None:
    between = figures(completed=28, hours_left=9, running_hours=4)  # 7/h, required 8/h, margin bar 6.4/h
    assert risk(between, was=False) == (False, ON_SCHEDULE)
    assert risk(between, was=True) == (True, BEHIND_SCHEDULE)
    assert risk(figures(completed=40, hours_left=7.5, running_hours=4), was=True) == (False, ON_SCHEDULE)  # 10 vs 8


def test_zero_progress_is_at_risk_once_a_quarter_of_the_time_is_used() -> None:
    assert risk(figures(completed=0, hours_left=76, running_hours=20)) == (False, ON_SCHEDULE)  # 24% used
    assert risk(figures(completed=0, hours_left=75, running_hours=20)) == (True, NO_PROGRESS)  # 25% used


def test_zero_progress_is_at_risk_with_less_than_fifteen_minutes_left_whatever_the_share_used() -> None:
    tiny = 0.3  # hours from creation to deadline
    assert risk(figures(completed=0, hours_left=0.3, running_hours=0, window_hours=tiny), fraction=1.0) == (
        False,
        ON_SCHEDULE,
    )
    assert risk(figures(completed=0, hours_left=0.24, running_hours=0, window_hours=tiny), fraction=1.0) == (
        True,
        NO_PROGRESS,
    )


def test_a_study_that_never_ran_but_completed_nothing_uses_the_no_progress_rule() -> None:
    assert risk(figures(completed=0, hours_left=10, running_hours=0)) == (True, NO_PROGRESS)


def test_thresholds_met_is_never_at_risk_and_a_passed_deadline_with_cells_needed_always_is() -> None:
    assert risk(figures(completed=100, hours_left=0.01, running_hours=0.5)) == (False, THRESHOLDS_MET)
    assert risk(figures(completed=99, hours_left=0, running_hours=99)) == (True, DEADLINE_PASSED)


def test_margin_zero_turns_the_rate_rule_off() -> None:
    assert risk(figures(completed=1, hours_left=10, running_hours=50), margin=0.0) == (False, ON_SCHEDULE)


def test_the_condition_summary_carries_no_figures_so_it_changes_only_with_the_verdict() -> None:
    a = assess_risk(
        figures(completed=20, hours_left=10, running_hours=4), was_at_risk=False, margin=0.8, no_progress_fraction=0.25
    )
    b = assess_risk(
        figures(completed=21, hours_left=9, running_hours=5), was_at_risk=True, margin=0.8, no_progress_fraction=0.25
    )
    assert a.message != b.message and a.summary == b.summary


def test_running_time_excludes_paused_stretches() -> None:
    clock = RunningTime(0, None).follow(running=True, now=T0)
    assert clock.at(T0 + timedelta(minutes=30)) == 1800
    paused = clock.follow(running=False, now=T0 + timedelta(minutes=30))
    assert paused == RunningTime(1800, None)
    assert paused.at(T0 + timedelta(hours=5)) == 1800  # paused hours do not count
    resumed = paused.follow(running=True, now=T0 + timedelta(hours=5))
    assert resumed.at(T0 + timedelta(hours=5, minutes=10)) == 2400


def test_running_time_does_not_change_while_nothing_starts_or_stops() -> None:
    clock = RunningTime(60, "2030-01-01T12:00:00Z")
    assert clock.follow(running=True, now=T0 + timedelta(hours=3)) is clock
    idle = RunningTime(60, None)
    assert idle.follow(running=False, now=T0 + timedelta(hours=3)) is idle


def test_a_status_from_before_running_time_was_recorded_counts_from_started_at() -> None:
    old = StudyStatus(state=StudyState.EXECUTING, startedAt="2030-01-01T12:00:00Z")
    assert running_time_of(old).at(T0 + timedelta(minutes=5)) == 300


def test_a_study_runs_while_executing_or_waiting_with_only_some_surfaces_blocked() -> None:
    assert is_running(StudyState.EXECUTING, all_cells_stopped=False)
    assert is_running(StudyState.HUMAN_INTERVENTION_REQUIRED, all_cells_stopped=False)
    assert not is_running(StudyState.HUMAN_INTERVENTION_REQUIRED, all_cells_stopped=True)
    assert not is_running(StudyState.PAUSED, all_cells_stopped=False)
    assert not is_running(StudyState.QUEUED, all_cells_stopped=False)


def test_figures_of_a_real_manifest_count_only_required_cells() -> None:
    m = manifest(queries=2, surfaces=("openai-api", "grok"), locations=("us-nyc",), optional=("grok",), threshold=1.0)
    records = fresh_records(m.cell_count)
    records[0] = DONE  # q0 openai
    records[1] = DONE  # q0 grok (optional)
    f = deadline_figures(
        deadline=T0 + timedelta(hours=2),
        created_at=T0,
        progress=progress_of(m, records),
        threshold=1.0,
        running_seconds=HOUR,
        now=T0 + timedelta(hours=1),
    )
    assert (f.cells_needed, f.completed_required, f.required_rate, f.current_rate) == (1, 1, 1.0, 1.0)
